"""Response KD across tokenizers (ULD): a student with its own BPE vocabulary learns from the teacher."""

import copy

import pytest
import torch
from bpe_models import bpe_gpt2, byte_bpe, fit

from distillery.jobspec import ResponseMethod
from engine.batching import IGNORE_INDEX
from engine.methods import method_class_for
from engine.methods.base import MethodContext
from engine.methods.response import ResponseDistillation
from engine.methods.uld import UniversalLogitDistillation

NUMBERS = "zero one two three four five six seven eight nine".split()  # noqa: SIM905
TEXTS = [" ".join(NUMBERS[(start + i) % 10] for i in range(6)) for start in range(10)] * 4


@pytest.fixture(scope="module")
def counting_teacher():
    """A teacher that knows the counting texts, each number word one token of its BPE vocabulary."""
    tokenizer = byte_bpe(TEXTS, 60)
    tokenizer.pad_token = tokenizer.eos_token
    model = bpe_gpt2(tokenizer, layers=2)
    fit(model, tokenizer, TEXTS, steps=40)
    model.requires_grad_(False)
    return model, tokenizer


def student_batch(tokenizer) -> dict[str, torch.Tensor]:
    rows = [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for text in TEXTS[:8]]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "labels": input_ids.masked_fill(mask == 0, IGNORE_INDEX),
    }


# Sorting suits a student whose smaller vocabulary splits the words; the hybrid, which matches shared
# tokens one to one, suits vocabularies that mostly tokenize the text alike.
@pytest.mark.parametrize(("student_vocabulary", "hybrid"), [(36, False), (50, True)])
def test_the_uld_loss_falls_for_a_student_with_another_vocabulary(
    counting_teacher, student_vocabulary, hybrid, train
):
    teacher, teacher_tokenizer = counting_teacher
    student_tokenizer = byte_bpe(TEXTS, student_vocabulary)
    student_tokenizer.pad_token = student_tokenizer.eos_token
    assert teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab()
    spec = ResponseMethod(cross_tokenizer="uld", hybrid=hybrid, alpha=1.0, temperature=1.0)
    method_class = method_class_for(spec)
    assert method_class is UniversalLogitDistillation
    student = bpe_gpt2(student_tokenizer, layers=1, seed=1)
    context = MethodContext(
        "causal_lm",
        student,
        teacher,
        lambda seed: copy.deepcopy(student),
        None,
        tokenizer=student_tokenizer,
        teacher_tokenizer=teacher_tokenizer,
    )
    method = method_class(spec, context)
    batch = student_batch(student_tokenizer)
    _, terms = method.training_loss(batch)
    assert 0.2 < terms["aligned"] <= 1.0 and terms["kd"] > 0
    losses = train(method, batch, steps=25, lr=1e-2)
    assert losses[-1] < 0.7 * losses[0]
    # With alpha 1 the loss is the ULD term alone; the teacher stays frozen and out of the state dict.
    assert all(not name.startswith("_teacher") for name in method.state_dict())


def test_without_the_option_response_kd_keeps_its_own_class():
    assert method_class_for(ResponseMethod()) is ResponseDistillation
