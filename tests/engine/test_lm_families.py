"""Any causal LM of a standard config loads from safetensors, and distils into another family on chat data."""

import json
from pathlib import Path

import pytest
import torch
from engine_helpers import RecordingCallbacks, loss_fell, train_losses
from lm_assets import (
    CHATML_TEMPLATE,
    FAMILIES,
    bpe_tokenizer,
    chat_texts,
    counting_chats,
    save_tiny_lm,
    tiny_lm,
)
from transformers import AutoModelForCausalLM

from distillery.jobspec import JobSpec, ModelRef, StudentSpec
from engine.errors import UserError
from engine.lm.data import chat_example
from engine.models import build_student, load_teacher
from engine.run import run_job


@pytest.fixture(scope="module")
def tokenizer():
    """One byte-level BPE tokenizer with a chat template, shared by every family (same vocabulary)."""
    return bpe_tokenizer(chat_texts(counting_chats(128, seed=0)), chat_template=CHATML_TEMPLATE)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_loads_as_teacher_and_as_a_student_of_fewer_layers(tmp_path, tokenizer, family):
    base = save_tiny_lm(family, tmp_path / family, tokenizer, layers=4)
    teacher = load_teacher(base, "causal_lm", eager=False, device="cpu")
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
    for index, spec in enumerate(
        [
            StudentSpec(init="teacher_layers", layers=[1, 3]),
            StudentSpec(init="config", config={"num_hidden_layers": 2}),
        ]
    ):
        student = build_student(spec, "causal_lm", base_dir=base, label2id=None, seed=0, eager=False)
        # Saved and loaded again: per-layer settings (Qwen's layer_types) follow the new depth.
        student.save_pretrained(tmp_path / f"student-{index}")
        again = AutoModelForCausalLM.from_pretrained(tmp_path / f"student-{index}", use_safetensors=True)
        assert again.config.num_hidden_layers == 2
        assert type(again).__name__ == type(teacher).__name__


def test_a_model_whose_type_only_its_own_code_defines_is_refused_without_running_it(tmp_path):
    model = tmp_path / "custom"
    model.mkdir()
    marker = tmp_path / "code-ran"
    auto_map = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (model / "config.json").write_text(json.dumps({"model_type": "x_lm", "auto_map": auto_map}))
    for module in ("configuration_x.py", "modeling_x.py"):
        (model / module).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(UserError) as caught:
        load_teacher(model, "causal_lm", eager=False, device="cpu")
    assert (caught.value.param, "never run" in str(caught.value)) == ("teacher", True)
    assert not marker.exists()


def fitted_teacher(family: str, tokenizer, rows: list[dict], directory: Path) -> Path:
    """A teacher of the family that has learnt the chats for a few steps."""
    model = tiny_lm(family, tokenizer, layers=2, seed=1)
    examples = [chat_example(row["messages"], tokenizer, completion_only=False)[0] for row in rows]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(24):
        batch = examples[(step * 8) % len(examples) :][:8]
        width = max(map(len, batch))
        ids = torch.tensor([row + [tokenizer.eos_token_id] * (width - len(row)) for row in batch])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize(("teacher", "student"), [("llama", "qwen2"), ("qwen2", "gpt2"), ("gpt2", "llama")])
def test_token_level_kd_between_families_on_chat_data_lowers_the_loss(tmp_path, tokenizer, teacher, student):
    rows = counting_chats(48, seed=3)
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    models = {"teacher": fitted_teacher(teacher, tokenizer, rows, tmp_path / "teacher")}
    models["student"] = save_tiny_lm(student, tmp_path / "student", tokenizer, layers=1, seed=2)
    full = max(len(chat_example(row["messages"], tokenizer, completion_only=True)[0]) for row in rows)
    spec = JobSpec.model_validate(
        {
            "task": "causal_lm",
            "teacher": {"path": "teacher"},
            "student": {"init": "pretrained", "model": {"path": "student"}},
            "data": {"train_file": "chats", "max_length": full - 2},
            "method": {"type": "response", "temperature": 1.0, "alpha": 0.8},
            "training": {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0},
        }
    )
    callbacks = RecordingCallbacks()
    result = run_job(
        spec,
        workdir=tmp_path / "run",
        resolve_model=lambda ref: models[str(ModelRef.model_validate(ref).path)],
        resolve_file=lambda _: data,
        callbacks=callbacks,
        device="cpu",
    )
    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path / "run"))
    summary = result.report["training"]["data"]
    assert (summary["format"], summary["chat_template"]) == ("chat", "tokenizer")
    cut = summary["examples"]["train"]["truncated"] + summary["examples"]["eval"]["truncated"]
    assert cut > 0 and any(f"truncated to max_length {full - 2}" in line for line in callbacks.messages)
    assert type(AutoModelForCausalLM.from_pretrained(result.student_dir)).__name__.lower().startswith(student)
