"""Evaluation metrics: accuracy and macro-F1 for classifiers, loss and perplexity for language models."""

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.batching import IGNORE_INDEX

# The metric that picks the best checkpoint, and whether higher is better.
PRIMARY_METRIC = {"sequence_classification": ("accuracy", True), "causal_lm": ("loss", False)}


def is_improvement(task: str, value: float, best: float | None) -> bool:
    """Whether `value` of the task's primary metric beats the best so far."""
    if best is None:
        return True
    return value > best if PRIMARY_METRIC[task][1] else value < best


def macro_f1(predictions: list[int], labels: list[int]) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in labels or predictions."""
    classes = set(labels) | set(predictions)
    scores = []
    for cls in classes:
        true_positive = sum(1 for p, y in zip(predictions, labels, strict=True) if p == cls and y == cls)
        predicted, actual = predictions.count(cls), labels.count(cls)
        scores.append(2 * true_positive / (predicted + actual) if predicted + actual else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def classification_metrics(predictions: list[int], labels: list[int], loss_sum: float) -> dict[str, float]:
    """Accuracy, macro-F1 and mean cross-entropy."""
    correct = sum(1 for p, y in zip(predictions, labels, strict=True) if p == y)
    count = max(len(labels), 1)
    return {"accuracy": correct / count, "macro_f1": macro_f1(predictions, labels), "loss": loss_sum / count}


def causal_lm_metrics(loss_sum: float, token_count: int) -> dict[str, float]:
    """Mean next-token cross-entropy per target token and its perplexity."""
    loss = loss_sum / max(token_count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


class MetricTotals:
    """Running sums over evaluation batches, turned into the task's metrics at the end."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.loss_sum, self.token_count = 0.0, 0
        self.predictions: list[int] = []
        self.labels: list[int] = []

    def add(self, logits: Tensor, targets: Tensor) -> None:
        """One batch's logits (float32) and labels."""
        if self.task == "sequence_classification":
            self.loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
            self.predictions += logits.argmax(dim=-1).tolist()
            self.labels += targets.tolist()
            return
        shifted_labels = targets[:, 1:]
        self.loss_sum += F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            shifted_labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        ).item()
        self.token_count += int((shifted_labels != IGNORE_INDEX).sum())

    def metrics(self) -> dict[str, float]:
        """Accuracy and macro-F1, or loss and perplexity, over every batch added."""
        if self.task == "sequence_classification":
            return classification_metrics(self.predictions, self.labels, self.loss_sum)
        return causal_lm_metrics(self.loss_sum, self.token_count)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict[str, Tensor]],
    *,
    task: str,
    device: torch.device | str,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> dict[str, float]:
    """The task's metrics of `model` over the batches; the model's train/eval mode is restored after."""
    was_training = model.training
    model.eval()
    totals = MetricTotals(task)
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items()}
        targets = batch.pop("labels")
        with autocast():
            logits = model(**batch).logits.float()
        totals.add(logits, targets)
    model.train(was_training)
    return totals.metrics()


def evaluate_logits(batches: Iterable[tuple[Tensor, Tensor]], *, task: str) -> dict[str, float]:
    """The task's metrics from (logits, labels) batches computed before, such as a teacher's stored ones."""
    totals = MetricTotals(task)
    for logits, targets in batches:
        totals.add(logits.float(), targets)
    return totals.metrics()
