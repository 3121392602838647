"""Batches: a seeded, length-grouped order per epoch, and dynamic padding to the longest example."""

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from engine.lm.packing import Packing

IGNORE_INDEX = -100
EXAMPLE_INDEX = "example_index"
# A packed batch's map of where each example lies (engine.lm.packing); like EXAMPLE_INDEX, no model input.
PACKED_SEGMENTS = "packed_segments"
# Batches per group sorted by length: big enough to pad little, small enough to keep batches random.
LENGTH_GROUP_BATCHES = 50
# Classifiers evaluate in batches up to 4x the training batch, at most this many (unless the spec says):
# inference keeps one layer's activations where training keeps every layer's, and larger batches of
# similar lengths evaluate faster (docs/benchmarks.md, "Speed levers"). A causal LM's logits (batch x
# length x vocabulary) grow with the batch as they do in training, so it evaluates at the training batch.
EVAL_BATCH_CAP = 128


def epoch_batch_order(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """The example indices of each batch of one epoch, shuffled by (seed, epoch).

    Grouped by length: the shuffled examples are cut into groups of LENGTH_GROUP_BATCHES batches, each
    group is sorted by length so a batch pads little, and the order of the batches is shuffled again.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    if group_by_length:
        group = batch_size * LENGTH_GROUP_BATCHES
        order = [
            index
            for start in range(0, len(order), group)
            for index in sorted(order[start : start + group], key=lambda i: -lengths[i])
        ]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches)).tolist()]
    return batches


def eval_batch_size(task: str, *, batch_size: int, eval_batch_size: int | None) -> int:
    """The spec's eval batch size, else for classification min(4 x batch, 128) but never below the batch."""
    if eval_batch_size is not None:
        return eval_batch_size
    if task == "sequence_classification":
        return max(batch_size, min(4 * batch_size, EVAL_BATCH_CAP))
    return batch_size


def eval_batch_order(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Eval batches of similar lengths; their order does not change the metrics."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def longest_batch(dataset: datasets.Dataset, batch_size: int, *, pad_token_id: int) -> dict[str, Tensor]:
    """The `batch_size` longest examples as one batch: the worst case a latency figure should show."""
    lengths = list(dataset["length"])
    longest = sorted(range(len(lengths)), key=lambda i: lengths[i])[-batch_size:]
    return next(iterate_batches(dataset, [longest], pad_token_id=pad_token_id))


def collate(rows: dict[str, list[Any]], *, pad_token_id: int) -> dict[str, Tensor]:
    """Pad one batch to its longest example: pad ids, mask 0, token types 0, LM labels -100."""
    width = max(len(ids) for ids in rows["input_ids"])

    def padded(name: str, fill: int) -> Tensor:
        return torch.tensor([list(seq) + [fill] * (width - len(seq)) for seq in rows[name]], dtype=torch.long)

    batch = {"input_ids": padded("input_ids", pad_token_id), "attention_mask": padded("attention_mask", 0)}
    if "token_type_ids" in rows:
        batch["token_type_ids"] = padded("token_type_ids", 0)
    labels = rows["labels"]
    batch["labels"] = padded("labels", IGNORE_INDEX) if isinstance(labels[0], list) else torch.tensor(labels)
    return batch


def iterate_batches(
    dataset: datasets.Dataset,
    batches: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    start: int = 0,
    with_index: bool = False,
    packing: "Packing | None" = None,
) -> Iterator[dict[str, Tensor]]:
    """Collated batches in the given order, from batch `start` on (to resume inside an epoch).

    `with_index` adds each example's position in the dataset as `example_index`, which methods may use
    to reuse per-example results across epochs; it is not a model input. With `packing` a causal LM's
    examples are packed into rows instead of padded, `example_index` still in the batch's order.
    """
    columns = dataset.select_columns([name for name in dataset.column_names if name != "length"])
    for indices in batches[start:]:
        rows = columns[list(indices)]
        if packing is None:
            batch = collate(rows, pad_token_id=pad_token_id)
        else:
            batch = packing.collate(rows, pad_token_id=pad_token_id)
        if with_index:
            batch[EXAMPLE_INDEX] = torch.tensor(list(indices), dtype=torch.long)
        yield batch


def examples_and_tokens(batch: dict[str, Tensor]) -> tuple[int, int]:
    """How many examples a batch holds and how many real tokens (padding left out), padded or packed."""
    segments = batch.get(PACKED_SEGMENTS)
    if segments is not None:  # one row per example: packed row, start, length, first label
        return int(segments.shape[0]), int(segments[:, 2].sum())
    mask = batch.get("attention_mask")
    tokens = int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
    return int(batch["input_ids"].shape[0]), tokens
