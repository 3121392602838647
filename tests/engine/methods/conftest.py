"""Tiny models, batches and a few optimiser steps for testing method classes directly."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
)

from engine.methods.base import Method, MethodContext

VOCAB_SIZE = 40
NUM_LABELS = 3


def tiny_bert(
    *, hidden: int = 32, layers: int = 2, heads: int = 2, eager: bool = False, seed: int = 0
) -> BertForSequenceClassification:
    """A BERT classifier small enough to train in milliseconds, dropout off so steps are deterministic."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=32,
        num_labels=NUM_LABELS,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config._attn_implementation = "eager" if eager else "sdpa"
    return BertForSequenceClassification(config)


def tiny_gpt2(*, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> GPT2LMHeadModel:
    """A GPT-2 language model small enough to train in milliseconds."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(config)


def classification_batch(batch_size: int = 8, length: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids with ragged padding on the right, and labels tied to the first token."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB_SIZE, (batch_size, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (batch_size,), generator=generator)
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    input_ids = input_ids * attention_mask
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros_like(input_ids),
        "labels": input_ids[:, 0] % NUM_LABELS,
    }


def causal_lm_batch(batch_size: int = 6, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random sequences padded on the right; labels are the ids with -100 at padding."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB_SIZE, (batch_size, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (batch_size,), generator=generator)
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    input_ids = input_ids * attention_mask
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def make_context(
    student: PreTrainedModel,
    teacher: PreTrainedModel | None = None,
    *,
    task: Any = "sequence_classification",
    new_student: Callable[[int], PreTrainedModel] | None = None,
) -> MethodContext:
    """The context the engine would hand a method: a frozen teacher in eval mode."""
    if teacher is not None:
        teacher.requires_grad_(False)
        teacher.eval()

    def copy_student(seed: int) -> PreTrainedModel:
        return copy.deepcopy(student)

    return MethodContext(
        task=task,
        student=student,
        teacher=teacher,
        new_student=new_student or copy_student,
        num_labels=NUM_LABELS if task == "sequence_classification" else None,
    )


def train_steps(method: Method, batch: dict[str, torch.Tensor], steps: int, lr: float = 1e-2) -> list[float]:
    """Run `steps` AdamW steps on one batch over the method's parameters; the loss of each step."""
    optimizer = torch.optim.AdamW(method.parameters(), lr=lr)
    method.train()
    losses = []
    for _ in range(steps):
        loss, terms = method.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert terms["loss"] == pytest.approx(loss.item())
        losses.append(loss.item())
    return losses


@pytest.fixture
def make_bert() -> Callable[..., BertForSequenceClassification]:
    """Build a tiny BERT classifier: make_bert(hidden=.., layers=.., heads=.., eager=.., seed=..)."""
    return tiny_bert


@pytest.fixture
def make_gpt2() -> Callable[..., GPT2LMHeadModel]:
    """Build a tiny GPT-2 language model: make_gpt2(hidden=.., layers=.., heads=.., seed=..)."""
    return tiny_gpt2


@pytest.fixture
def cls_batch() -> dict[str, torch.Tensor]:
    """A padded classification batch."""
    return classification_batch()


@pytest.fixture
def lm_batch() -> dict[str, torch.Tensor]:
    """A padded causal LM batch."""
    return causal_lm_batch()


@pytest.fixture
def context() -> Callable[..., MethodContext]:
    """Build a MethodContext: context(student, teacher=None, task=.., new_student=..)."""
    return make_context


@pytest.fixture
def train() -> Callable[..., list[float]]:
    """Run a few optimiser steps on one batch: train(method, batch, steps, lr=..)."""
    return train_steps
