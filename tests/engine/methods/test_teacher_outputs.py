"""Stored teacher outputs equal the live teacher's, within float16 rounding, for every teacher method."""

from pathlib import Path

import datasets
import pytest
import torch

from distillery.jobspec.methods import (
    AttentionMethod,
    FeatureMethod,
    GKDMethod,
    RelationMethod,
    ResponseMethod,
)
from engine.batching import EXAMPLE_INDEX
from engine.callbacks import Callbacks
from engine.methods.attention import AttentionDistillation
from engine.methods.base import model_inputs
from engine.methods.feature import FeatureDistillation
from engine.methods.gkd import GKDDistillation
from engine.methods.relation import RelationDistillation
from engine.methods.response import ResponseDistillation
from engine.methods.teacher import TeacherMethod
from engine.teacher_cache import TeacherCacheConfig, prepare_teacher_outputs

CASES = {
    "response": (ResponseDistillation, ResponseMethod(), "sequence_classification"),
    "feature": (FeatureDistillation, FeatureMethod(), "sequence_classification"),
    "tinybert": (AttentionDistillation, AttentionMethod(style="tinybert"), "sequence_classification"),
    "minilm": (AttentionDistillation, AttentionMethod(style="minilm"), "sequence_classification"),
    "relation": (RelationDistillation, RelationMethod(), "sequence_classification"),
    "lm-response": (ResponseDistillation, ResponseMethod(), "causal_lm"),
    "lm-response-top-k": (ResponseDistillation, ResponseMethod(top_k=5), "causal_lm"),
    "lm-feature-top-k": (FeatureDistillation, FeatureMethod(top_k=5), "causal_lm"),
    "lm-gkd-top-k": (GKDDistillation, GKDMethod(lmbda=0, top_k=5), "causal_lm"),
    "lm-gkd-exact": (GKDDistillation, GKDMethod(lmbda=0, top_k="exact"), "causal_lm"),
}


def as_dataset(batch: dict[str, torch.Tensor]) -> datasets.Dataset:
    """The batch's rows without their padding, as the engine's tokenized datasets hold them."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    columns = {
        name: [row[:length] for row, length in zip(batch[name].tolist(), lengths, strict=True)]
        for name in ("input_ids", "attention_mask", "token_type_ids")
        if name in batch
    }
    labels = batch["labels"].tolist()
    if batch["labels"].dim() == 2:
        labels = [row[:length] for row, length in zip(labels, lengths, strict=True)]
    return datasets.Dataset.from_dict({**columns, "labels": labels, "length": lengths})


def store_and_attach(method: TeacherMethod, batch: dict[str, torch.Tensor], tmp_path: Path) -> str:
    """Run the teacher pass over the batch's examples, attach the stored outputs; the cache status."""
    teacher_dir = tmp_path / "teacher"
    method.frozen_teacher.save_pretrained(teacher_dir)
    dataset = as_dataset(batch)
    teacher_pass = method.teacher_pass_for(teacher_dir)
    stored, outcome = prepare_teacher_outputs(
        teacher_pass,
        {"train": dataset, "eval": dataset},
        mode="on",
        config=TeacherCacheConfig(tmp_path / "cache"),
        scratch_dir=tmp_path,
        planned_visits=0,
        callbacks=Callbacks(),
    )
    assert stored is not None
    method.attach_stored_outputs(stored.lookup("train"))
    return outcome.status


@pytest.mark.parametrize("case", sorted(CASES))
def test_stored_outputs_match_the_live_teacher_within_float16(
    case, make_bert, make_gpt2, context, cls_batch, lm_batch, tmp_path
):
    method_class, spec, task = CASES[case]
    if task == "causal_lm":
        student, teacher, batch = make_gpt2(), make_gpt2(layers=3, seed=1), lm_batch
    else:
        eager = case == "tinybert"
        student, teacher, batch = make_bert(eager=eager), make_bert(layers=3, eager=eager, seed=1), cls_batch
    method = method_class(spec, context(student, teacher, task=task))
    with torch.no_grad():
        live = method.teacher_pass(model_inputs(batch))
        live_loss, _ = method.training_loss(batch)

    assert store_and_attach(method, batch, tmp_path) == "miss"
    indexed = {**batch, EXAMPLE_INDEX: torch.arange(len(batch["input_ids"]))}
    stored = method.teacher_targets(indexed)

    assert set(stored) == set(live) == set(method.teacher_fields())
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    for name, field in method.teacher_fields().items():
        for row, length in enumerate(lengths):
            got, want = field.cut(stored[name], row, length), field.cut(live[name], row, length)
            if field.dtype == "int32":
                assert torch.equal(got.long(), want.long()), name
            else:
                torch.testing.assert_close(got, want.float(), rtol=4e-3, atol=2e-3, msg=name)
    with torch.no_grad():
        stored_loss, _ = method.training_loss(indexed)
    assert stored_loss.item() == pytest.approx(live_loss.item(), rel=1e-2, abs=1e-3)


def test_without_example_indices_the_teacher_runs_live(make_bert, context, cls_batch, tmp_path):
    method = ResponseDistillation(ResponseMethod(), context(make_bert(), make_bert(seed=1)))
    store_and_attach(method, cls_batch, tmp_path)
    calls = []
    method.frozen_teacher.register_forward_hook(lambda module, args, output: calls.append(1))

    method.teacher_targets({**cls_batch, EXAMPLE_INDEX: torch.arange(8)})
    assert calls == []
    method.teacher_targets(cls_batch)
    assert calls == [1]
