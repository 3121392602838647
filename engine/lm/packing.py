"""Packing: a batch's examples laid end to end in rows, each example attending only to its own tokens.

A packed batch holds the same examples as the padded one and gives each the loss it has alone:
- each example's position ids start again at 0;
- attention never crosses from one example to another. Layout `block_mask` (sdpa and eager models, the
  CPU's): rows of at most `capacity` tokens (as wide as computes the fewest positions), filled first-fit
  by decreasing length, and a block-diagonal causal mask [rows, 1, width, width] given to the model as
  its attention mask, which transformers passes on as it is. Layout `varlen` (flash attention): every
  example in one row without padding and no mask; transformers finds where each example starts from
  the position ids and runs the varlen kernel, as with its `DataCollatorWithFlattening`;
- the first token of each example is no target: a position's target is the next token's label, and the
  position before an example belongs to another one.
`PACKED_SEGMENTS` says where each example lies, so per-example outputs (the teacher cache's) are put in
place and the padded batch can be restored.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from engine.batching import IGNORE_INDEX, PACKED_SEGMENTS

Layout = Literal["block_mask", "varlen"]
# The columns of PACKED_SEGMENTS, one row per example in the batch's order.
ROW, START, LENGTH, FIRST_LABEL = range(4)
# Row widths tried between the longest example and the capacity: enough to find a snug one, cheap per batch.
WIDTH_STEPS = 8


@dataclass(frozen=True)
class Packing:
    """How packed batches are laid out: rows of at most `capacity` tokens, for the models' attention."""

    capacity: int
    layout: Layout = "block_mask"
    # Eager attention adds its mask to the scores, so it takes 0 / a large negative number, not booleans.
    additive_mask: bool = False

    def collate(self, rows: dict[str, list[Any]], *, pad_token_id: int) -> dict[str, Tensor]:
        """The examples of one batch (token ids and labels, in the batch's order) as a packed batch."""
        return pack_batch(rows["input_ids"], rows["labels"], self, pad_token_id=pad_token_id)


def first_fit_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Example positions per row: longest first, each into the first row with room (first-fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for position in sorted(range(len(lengths)), key=lambda index: -lengths[index]):
        length = lengths[position]
        row = next((index for index, left in enumerate(room) if left >= length), None)
        if row is None:
            rows.append([])
            room.append(max(capacity, length))
            row = len(rows) - 1
        rows[row].append(position)
        room[row] -= length
    return rows


def computed_positions(lengths: Sequence[int], rows: Sequence[Sequence[int]]) -> int:
    """Positions a batch of these rows computes: the rows times the fullest row's tokens."""
    return len(rows) * max(sum(lengths[position] for position in row) for row in rows)


def row_plan(lengths: Sequence[int], packing: Packing) -> list[list[int]]:
    """The example positions of each row of a packed batch.

    Block mask: of rows between the longest example and `capacity` tokens wide, the width that leaves
    the fewest positions to compute (the narrower on a tie, as attention grows with its square). Never
    more than padding computes: rows as wide as the longest example hold at most one row per example.
    """
    if packing.layout == "varlen":
        return [list(range(len(lengths)))]
    longest = max(lengths)
    capacity = max(packing.capacity, longest)
    steps = WIDTH_STEPS
    widths = sorted({longest + (capacity - longest) * step // steps for step in range(steps + 1)})
    plans = [first_fit_rows(lengths, width) for width in widths]
    return min(plans, key=lambda rows: computed_positions(lengths, rows))


def pack_batch(
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    packing: Packing,
    *,
    pad_token_id: int,
) -> dict[str, Tensor]:
    """input_ids, labels, position_ids, the attention mask (block_mask layout) and PACKED_SEGMENTS."""
    lengths = [len(ids) for ids in input_ids]
    plan = row_plan(lengths, packing)
    width = max(sum(lengths[position] for position in row) for row in plan)
    shape = (len(plan), width)
    packed_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    packed_labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros(shape, dtype=torch.long)
    owner = torch.full(shape, -1, dtype=torch.long)  # the example at each position; -1 for padding
    segments = torch.zeros((len(lengths), 4), dtype=torch.long)
    for row, members in enumerate(plan):
        cursor = 0
        for position in members:
            end = cursor + lengths[position]
            example_labels = torch.tensor(labels[position], dtype=torch.long)
            segments[position] = torch.tensor([row, cursor, lengths[position], int(example_labels[0])])
            example_labels[0] = IGNORE_INDEX
            packed_ids[row, cursor:end] = torch.tensor(input_ids[position], dtype=torch.long)
            packed_labels[row, cursor:end] = example_labels
            positions[row, cursor:end] = torch.arange(lengths[position])
            owner[row, cursor:end] = position
            cursor = end
        positions[row, cursor:] = torch.arange(width - cursor)  # padding reads as a sequence of its own
    batch = {
        "input_ids": packed_ids,
        "labels": packed_labels,
        "position_ids": positions,
        PACKED_SEGMENTS: segments,
    }
    if packing.layout == "block_mask":
        batch["attention_mask"] = block_causal_mask(owner, additive=packing.additive_mask)
    return batch


def block_causal_mask(owner: Tensor, *, additive: bool) -> Tensor:
    """[rows, 1, width, width]: a position sees the earlier positions of its own example (padding: its own
    padding, so no row of the mask is empty), as booleans or as 0 and the float32 minimum."""
    width = owner.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = (owner[:, :, None] == owner[:, None, :]) & causal
    if not additive:
        return allowed[:, None]
    mask = torch.zeros(allowed.shape, dtype=torch.float32)
    return mask.masked_fill_(~allowed, torch.finfo(torch.float32).min)[:, None]


def token_places(segments: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For every real token of a packed batch: its example, its offset there, its packed row and column."""
    lengths = segments[:, LENGTH]
    example = torch.repeat_interleave(torch.arange(len(segments), device=segments.device), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    offset = torch.arange(int(lengths.sum()), device=segments.device) - first[example]
    return example, offset, segments[example, ROW], segments[example, START] + offset


def place_examples(values: Tensor, segments: Tensor, shape: tuple[int, int]) -> Tensor:
    """Per-example values [examples, length, ...] (right-padded) moved to their places [rows, width, ...]."""
    example, offset, row, column = token_places(segments)
    placed = values.new_zeros((*shape, *values.shape[2:]))
    placed[row, column] = values[example, offset]
    return placed


def unpack_batch(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """A packed batch back to one right-padded example per row (input_ids, attention_mask, labels).

    The padding holds token 0, which the attention mask marks; the other keys are left out.
    """
    segments = batch[PACKED_SEGMENTS]
    example, offset, row, column = token_places(segments)
    shape = (len(segments), int(segments[:, LENGTH].max()))
    device = batch["input_ids"].device
    input_ids = torch.zeros(shape, dtype=torch.long, device=device)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long, device=device)
    input_ids[example, offset] = batch["input_ids"][row, column]
    labels[example, offset] = batch["labels"][row, column]
    labels[:, 0] = segments[:, FIRST_LABEL]
    attention_mask = (torch.arange(shape[1], device=device) < segments[:, LENGTH, None]).long()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def position_fill(
    lengths: Sequence[int], batches: Sequence[Sequence[int]], packing: Packing
) -> dict[str, float]:
    """The share of computed positions that are real tokens over these batches, padded and packed."""
    real = padded = packed = 0
    for batch in batches:
        sizes = [lengths[index] for index in batch]
        plan = row_plan(sizes, packing)
        real += sum(sizes)
        padded += len(sizes) * max(sizes)
        packed += computed_positions(sizes, plan)
    return {"padded_fill": real / max(padded, 1), "packed_fill": real / max(packed, 1)}
