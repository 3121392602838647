"""Packed batches: every example gets the loss it has alone, from the live teacher and from the cache."""

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from lm_assets import FAMILIES
from transformers import AutoConfig, AutoModelForCausalLM

from distillery.jobspec.methods import GKDMethod, MutualMethod, ResponseMethod, SupervisedMethod
from engine.batching import EXAMPLE_INDEX, IGNORE_INDEX, PACKED_SEGMENTS, collate, examples_and_tokens
from engine.callbacks import Callbacks
from engine.generation import batch_prompts
from engine.lm.packed_attention import packing_for
from engine.lm.packing import (
    Packing,
    computed_positions,
    first_fit_rows,
    position_fill,
    row_plan,
    token_places,
    unpack_batch,
)
from engine.methods.base import Method
from engine.methods.gkd import GKDDistillation
from engine.methods.mutual import MutualDistillation
from engine.methods.response import ResponseDistillation
from engine.methods.supervised import SupervisedDistillation
from engine.methods.teacher import TeacherMethod
from engine.teacher_cache import TeacherCacheConfig, prepare_teacher_outputs

Example = tuple[list[int], list[int]]
CAPACITY = 24
METHODS: dict[str, tuple[type[Method], Any]] = {
    "supervised (CE)": (SupervisedDistillation, SupervisedMethod()),
    "response (KD + CE)": (ResponseDistillation, ResponseMethod(temperature=2.0, alpha=0.5)),
    "response top-k": (ResponseDistillation, ResponseMethod(top_k=5, divergence="jsd")),
    "gkd off-policy": (GKDDistillation, GKDMethod(lmbda=0.0, beta=0.5)),
    "mutual": (MutualDistillation, MutualMethod()),
}
TEACHER_CASES = ("response (KD + CE)", "response top-k")


def lm_examples(count: int = 7, seed: int = 0) -> list[Example]:
    """Examples of 3 to 14 tokens whose first part (a prompt) takes no loss, as chats have it."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        ids = [rng.randrange(1, 40) for _ in range(rng.randint(3, 14))]
        prompt = rng.randint(0, len(ids) - 2)
        examples.append((ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return examples


def rows_of(examples: list[Example]) -> dict[str, list[Any]]:
    """The columns a tokenized dataset gives a batch of these examples."""
    return {
        "input_ids": [ids for ids, _ in examples],
        "attention_mask": [[1] * len(ids) for ids, _ in examples],
        "labels": [labels for _, labels in examples],
    }


def padded(examples: list[Example], indices: list[int]) -> dict[str, torch.Tensor]:
    """The examples at `indices` as the padded batch the engine makes without packing."""
    batch = collate(rows_of([examples[index] for index in indices]), pad_token_id=0)
    return {**batch, EXAMPLE_INDEX: torch.tensor(indices)}


def packed(examples: list[Example], indices: list[int], packing: Packing) -> dict[str, torch.Tensor]:
    """The same examples as a packed batch."""
    batch = packing.collate(rows_of([examples[index] for index in indices]), pad_token_id=0)
    return {**batch, EXAMPLE_INDEX: torch.tensor(indices)}


def only_example(batch: dict[str, torch.Tensor], position: int) -> dict[str, torch.Tensor]:
    """The packed batch with the labels of every example but the one at `position` in it taken out."""
    example, _, row, column = token_places(batch[PACKED_SEGMENTS])
    mine = example == position
    labels = torch.full_like(batch["labels"], IGNORE_INDEX)
    labels[row[mine], column[mine]] = batch["labels"][row[mine], column[mine]]
    return {**batch, "labels": labels}


def build(name: str, make_gpt2: Callable[..., Any], context: Callable[..., Any], *, eager: bool) -> Method:
    """The method on float64 models, with eager or sdpa attention."""
    method_class, spec = METHODS[name]
    student = make_gpt2().double()
    teacher = make_gpt2(layers=3, seed=1).double() if spec.needs_teacher else None
    for model in (student, teacher):
        if model is not None:
            model.config._attn_implementation = "eager" if eager else "sdpa"
            model.config.use_cache = False
    method = method_class(spec, context(student, teacher, task="causal_lm")).double()
    method.train()
    return method


def attach_cache(method: TeacherMethod, examples: list[Example], tmp_path: Path) -> None:
    """The teacher's outputs for every example, computed one padded batch at a time and stored."""
    teacher_dir = tmp_path / "teacher"
    method.frozen_teacher.save_pretrained(teacher_dir)
    rows = rows_of(examples)
    dataset = datasets.Dataset.from_dict({**rows, "length": [len(ids) for ids in rows["input_ids"]]})
    stored, outcome = prepare_teacher_outputs(
        method.teacher_pass_for(teacher_dir, precision="fp32"),
        {"train": dataset, "eval": dataset},
        mode="on",
        config=TeacherCacheConfig(tmp_path / "cache"),
        scratch_dir=tmp_path,
        planned_visits=0,
        callbacks=Callbacks(),
    )
    assert stored is not None and outcome.status == "miss"
    method.attach_stored_outputs(stored.lookup("train"))


LAYOUTS = {
    "sdpa, boolean block mask": (Packing(CAPACITY), False),
    "eager, additive block mask": (Packing(CAPACITY, additive_mask=True), True),
    "varlen (position ids, one row)": (Packing(CAPACITY, "varlen"), False),
}


# Every method on the CPU's layout; the other layouts with the plain and the distilled loss.
CASES = [(name, "sdpa, boolean block mask") for name in sorted(METHODS)] + [
    (name, layout)
    for name in ("supervised (CE)", "response (KD + CE)")
    for layout in sorted(LAYOUTS)
    if layout != "sdpa, boolean block mask"
]


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_every_packed_example_has_the_loss_it_has_alone(name, layout, make_gpt2, context):
    packing, eager = LAYOUTS[layout]
    method = build(name, make_gpt2, context, eager=eager)
    examples = lm_examples()
    indices = list(range(len(examples)))
    batch = packed(examples, indices, packing)
    assert batch["input_ids"].shape[0] == (1 if packing.layout == "varlen" else 3)  # 61 tokens, rows of 24

    for position, index in enumerate(indices):
        alone, _ = method.training_loss(padded(examples, [index]))
        in_pack, _ = method.training_loss(only_example(batch, position))
        assert in_pack.item() == pytest.approx(alone.item(), rel=1e-9, abs=1e-12), index


@pytest.mark.parametrize("name", TEACHER_CASES)
def test_stored_teacher_outputs_line_up_with_their_examples_inside_packed_rows(
    name, make_gpt2, context, tmp_path
):
    method = build(name, make_gpt2, context, eager=False)
    examples = lm_examples(seed=1)
    attach_cache(method, examples, tmp_path)
    assert isinstance(method, TeacherMethod)
    indices = [5, 0, 3, 6, 1, 4, 2]  # not the dataset's order, as a shuffled epoch has them
    batch = packed(examples, indices, Packing(CAPACITY))

    for position, index in enumerate(indices):
        alone, _ = method.training_loss(padded(examples, [index]))
        in_pack, _ = method.training_loss(only_example(batch, position))
        assert in_pack.item() == pytest.approx(alone.item(), rel=1e-9, abs=1e-12), index


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_packed_batch_has_the_padded_batchs_loss_and_gradient(name, make_gpt2, context):
    method = build(name, make_gpt2, context, eager=False)
    examples = lm_examples(count=9, seed=2)
    indices = list(range(len(examples)))

    def loss_and_gradient(batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
        method.zero_grad()
        loss, _ = method.training_loss(batch)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in method.parameters() if p.grad is not None])

    padded_loss, padded_gradient = loss_and_gradient(padded(examples, indices))
    packed_loss, packed_gradient = loss_and_gradient(packed(examples, indices, Packing(CAPACITY)))
    assert packed_loss == pytest.approx(padded_loss, rel=1e-9)
    torch.testing.assert_close(packed_gradient, padded_gradient, rtol=1e-7, atol=1e-10)


def test_rows_hold_at_most_their_capacity_and_every_example_once():
    lengths = [9, 3, 14, 7, 7, 2, 11, 5]
    rows = first_fit_rows(lengths, 16)
    assert sorted(position for row in rows for position in row) == list(range(len(lengths)))
    assert all(sum(lengths[position] for position in row) <= 16 for row in rows)
    assert len(rows) == 4  # 58 tokens: first-fit decreasing needs the fewest rows of 16 here
    assert first_fit_rows([20, 3], 16) == [[0], [1]]  # a longer example gets a row of its own


@pytest.mark.parametrize("seed", range(5))
def test_packing_never_computes_more_positions_than_padding(seed):
    rng = random.Random(seed)
    for _ in range(20):
        lengths = [rng.randint(2, 30) for _ in range(rng.randint(1, 24))]
        rows = row_plan(lengths, Packing(32))
        assert sorted(position for row in rows for position in row) == list(range(len(lengths)))
        assert all(sum(lengths[position] for position in row) <= 32 for row in rows)
        assert computed_positions(lengths, rows) <= len(lengths) * max(lengths)


def test_a_packed_batch_unpacks_to_its_examples_and_counts_only_real_tokens():
    examples = lm_examples(seed=3)
    indices = [2, 0, 6, 1]
    batch = packed(examples, indices, Packing(CAPACITY))
    padded_batch = padded(examples, indices)

    unpacked = unpack_batch(batch)
    for name in ("attention_mask", "labels"):
        torch.testing.assert_close(unpacked[name], padded_batch[name])
    torch.testing.assert_close(unpacked["input_ids"] * unpacked["attention_mask"], padded_batch["input_ids"])
    assert batch_prompts(unpacked, 4, None) == batch_prompts(padded_batch, 4, None)
    tokens = sum(len(examples[index][0]) for index in indices)
    assert examples_and_tokens(batch) == examples_and_tokens(padded_batch) == (4, tokens)


def test_the_position_fill_compares_packed_rows_with_padded_batches():
    fill = position_fill([4, 8, 2, 2], [[0, 1], [2, 3]], Packing(16))
    assert fill == {"padded_fill": 16 / 20, "packed_fill": 16 / 16}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_model_family_reads_a_packed_row_as_its_examples_alone(family):
    depth = {"n_layer": 2} if family == "gpt2" else {"num_hidden_layers": 2, "max_position_embeddings": 64}
    special = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    config = AutoConfig.for_model(family, vocab_size=40, **special, **FAMILIES[family], **depth)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).double().eval()
    packing = packing_for([model], CAPACITY)
    assert packing == Packing(CAPACITY)  # sdpa: a boolean block mask
    examples = lm_examples(seed=4)
    batch = packed(examples, list(range(len(examples))), packing)
    inputs = {name: batch[name] for name in ("input_ids", "attention_mask", "position_ids")}

    with torch.no_grad():
        logits = model(**inputs).logits
        for position, (ids, _) in enumerate(examples):
            row, start, length, _ = batch[PACKED_SEGMENTS][position].tolist()
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(logits[row, start : start + length], alone, rtol=1e-9, atol=1e-10)
