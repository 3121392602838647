"""The report's language-model section: perplexity, bits per byte, top-1 agreement and tokens/s.

Every model reads the same held-out split in one pass, batch by batch: the student and the control in
the student's tokens, the teacher in its own (re-tokenized by character when the tokenizers differ).
Perplexity is per token of each model's own tokenizer; bits per byte divide the same log-loss by the
bytes of the text scored, so they compare models whose tokenizers differ. Top-1 agreement is the share
of positions where the model's most likely next token is the teacher's: compared by id with one
tokenizer; with two, at the positions that follow the same characters, the tokens agree when one's
text begins the other's.
"""

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.jobspec import ReportSpec
from engine.batching import IGNORE_INDEX, eval_batch_order, iterate_batches
from engine.lm.alignment import TeacherBatch, TokenAligner

Autocast = Callable[[], AbstractContextManager[object]]


@dataclass
class LanguageModels:
    """The models the section compares, their tokenizers, and the aligner when the tokenizers differ."""

    student: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    teacher: PreTrainedModel | None = None
    teacher_tokenizer: PreTrainedTokenizerBase | None = None
    control: PreTrainedModel | None = None
    aligner: TokenAligner | None = None

    def named(self) -> dict[str, PreTrainedModel]:
        """The models present, by role."""
        models = {"student": self.student, "teacher": self.teacher, "control": self.control}
        return {name: model for name, model in models.items() if model is not None}


@dataclass
class Scores:
    """One model's running sums over the split."""

    nll: float = 0.0
    targets: int = 0
    read_tokens: int = 0
    seconds: float = 0.0
    agreed: int = 0
    compared: int = 0

    def summary(self, text_bytes: int) -> dict[str, float | int | None]:
        """Loss, perplexity and bits per byte of the scored text, and tokens read per second."""
        loss = self.nll / max(self.targets, 1)
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_byte": self.nll / math.log(2) / text_bytes if text_bytes else None,
            "scored_tokens": self.targets,
            "tokens_per_second": self.read_tokens / self.seconds if self.seconds > 0 else None,
        }


@dataclass
class SplitScores:
    """Every model's scores over the split and the bytes of text they scored."""

    models: dict[str, Scores] = field(default_factory=dict)
    text_bytes: int = 0


def synchronize(device: torch.device) -> None:
    """Wait for a GPU's queued work, so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _score(model: PreTrainedModel, batch: dict[str, Tensor], scores: Scores, autocast: Autocast) -> Tensor:
    """Add one batch to a model's sums; its most likely next token at every position [B, L - 1]."""
    device = batch["input_ids"].device
    synchronize(device)
    start = time.perf_counter()
    with autocast():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    synchronize(device)
    scores.seconds += time.perf_counter() - start
    logits, labels = logits[:, :-1].float(), batch["labels"][:, 1:]
    scores.nll += F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    ).item()
    scores.targets += int((labels != IGNORE_INDEX).sum())
    scores.read_tokens += int(batch["attention_mask"].sum())
    return logits.argmax(dim=-1)


def scored_text_bytes(tokenizer: PreTrainedTokenizerBase, batch: dict[str, Tensor]) -> int:
    """UTF-8 bytes of the text of the batch's counted next tokens (special tokens count none)."""
    total = 0
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        counted = [token for k, token in enumerate(ids) if k > 0 and labels[k] != IGNORE_INDEX]
        total += len(tokenizer.decode(counted, skip_special_tokens=True).encode("utf-8"))
    return total


class TokenText:
    """The text of single tokens, remembered, to compare predictions across tokenizers."""

    END = "\x00end of text"

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.known: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        """The decoded text of one token id; every tokenizer's end-of-text token reads the same."""
        if token not in self.known:
            text = self.tokenizer.decode([token], clean_up_tokenization_spaces=False)
            self.known[token] = self.END if token == self.tokenizer.eos_token_id else text
        return self.known[token]


def same_prediction(ours: str, theirs: str) -> bool:
    """Two next tokens of different tokenizers agree when one's text begins the other's.

    A student that predicts " f" where the teacher predicts " four" predicts the same text, in a
    smaller piece; an empty text agrees only with an empty one.
    """
    if not ours or not theirs:
        return ours == theirs
    return ours.startswith(theirs) or theirs.startswith(ours)


def _agreement(
    predicted: Tensor,
    teacher_predicted: Tensor,
    labels: Tensor,
    view: TeacherBatch | None,
    texts: tuple[TokenText, TokenText] | None,
) -> tuple[int, int]:
    """(agreeing, compared) positions of a model's and the teacher's top-1 next tokens in one batch."""
    if view is None or texts is None:
        counted = labels[:, 1:] != IGNORE_INDEX
        return int((predicted == teacher_predicted)[counted].sum()), int(counted.sum())
    ours = predicted[view.student_rows, view.student_columns].tolist()
    theirs = teacher_predicted[view.teacher_rows, view.teacher_columns].tolist()
    student_text, teacher_text = texts
    agreed = sum(same_prediction(student_text(a), teacher_text(b)) for a, b in zip(ours, theirs, strict=True))
    return agreed, len(ours)


@torch.inference_mode()
def score_split(
    dataset: datasets.Dataset,
    models: LanguageModels,
    *,
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
    autocast: Autocast,
) -> SplitScores:
    """Every model's log-loss, tokens read, time and agreement with the teacher over the split."""
    named = models.named()
    for model in named.values():
        model.eval()
    result = SplitScores(models={name: Scores() for name in named})
    texts = None
    if models.aligner is not None and models.teacher_tokenizer is not None:
        texts = (TokenText(models.tokenizer), TokenText(models.teacher_tokenizer))
    order = eval_batch_order(list(dataset["length"]), batch_size)
    for cpu_batch in iterate_batches(dataset, order, pad_token_id=pad_token_id):
        batch = {key: value.to(device) for key, value in cpu_batch.items()}
        result.text_bytes += scored_text_bytes(models.tokenizer, cpu_batch)
        view, teacher_predicted = None, None
        if models.teacher is not None:
            teacher_batch = batch
            if models.aligner is not None:
                view = models.aligner.batch(batch["input_ids"], batch["attention_mask"], batch["labels"])
                teacher_batch = {"input_ids": view.input_ids, "attention_mask": view.attention_mask}
                teacher_batch["labels"] = view.labels
            teacher_predicted = _score(models.teacher, teacher_batch, result.models["teacher"], autocast)
        for name in ("student", "control"):
            if name not in named:
                continue
            predicted = _score(named[name], batch, result.models[name], autocast)
            if teacher_predicted is not None:
                agreed, compared = _agreement(predicted, teacher_predicted, batch["labels"], view, texts)
                result.models[name].agreed += agreed
                result.models[name].compared += compared
    return result


def tokenizer_facts(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The tokenizer's kind, the directory it came from and its vocabulary size."""
    return {
        "name": str(tokenizer.name_or_path).rsplit("/", 1)[-1] or None,
        "kind": type(tokenizer).__name__,
        "vocabulary": len(tokenizer),
    }


def language_model_section(
    split: str,
    scores: SplitScores,
    samples: list[dict[str, str]],
    rates: dict[str, float | None],
    models: LanguageModels,
    report: ReportSpec,
) -> dict[str, Any]:
    """The report's `language_model` section from the split's scores and the generations."""
    per_model: dict[str, Any] = {}
    for name, model_scores in scores.models.items():
        summary = model_scores.summary(scores.text_bytes)
        summary["generation_tokens_per_second"] = rates.get(name)
        if name != "teacher":
            positions = model_scores.compared
            summary["top1_agreement"] = model_scores.agreed / positions if positions else None
        per_model[name] = summary
    student_scores = scores.models["student"]
    compared = student_scores.compared if models.teacher is not None else None
    tokenizers = {"student": tokenizer_facts(models.tokenizer)}
    if models.teacher_tokenizer is not None:
        tokenizers["teacher"] = tokenizer_facts(models.teacher_tokenizer)
    return {
        "split": split,
        "text_bytes": scores.text_bytes,
        "same_tokenizer": models.aligner is None,
        "tokenizers": tokenizers,
        "student": per_model["student"],
        "teacher": per_model.get("teacher"),
        "control": per_model.get("control"),
        "agreement_positions": compared,
        "aligned_fraction": compared / student_scores.targets
        if compared is not None and student_scores.targets
        else None,
        "generation": {
            "decoding": "greedy",
            "prompts": len(samples),
            "prompt_tokens": report.prompt_tokens,
            "max_new_tokens": report.max_new_tokens,
        },
        "generations": samples,
    }


def batches_in_teacher_tokens(
    batches: Iterator[dict[str, Tensor]], aligner: TokenAligner
) -> Iterator[dict[str, Tensor]]:
    """Student batches re-tokenized for a teacher with another tokenizer (ids, mask and labels)."""
    for batch in batches:
        view = aligner.batch(batch["input_ids"], batch["attention_mask"], batch["labels"])
        yield {"input_ids": view.input_ids, "attention_mask": view.attention_mask, "labels": view.labels}
