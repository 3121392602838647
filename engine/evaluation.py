"""Evaluation metrics: accuracy and macro-F1 for classifiers, loss and perplexity for language models."""

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.batching import IGNORE_INDEX
from engine.distributed.ranks import SINGLE, Ranks
from engine.standard_errors import LossSums, perplexity_stderr, proportion_stderr

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
    """Running sums over evaluation batches, turned into the task's metrics at the end.

    Beside them, per-example sums (`LossSums`) give each metric's standard error (`stderr`).
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self.loss_sum, self.token_count = 0.0, 0
        self.predictions: list[int] = []
        self.labels: list[int] = []
        self.sums = LossSums()

    def add(self, logits: Tensor, targets: Tensor) -> None:
        """One batch's logits (float32) and labels."""
        if self.task == "sequence_classification":
            losses = F.cross_entropy(logits, targets, reduction="none")
            self.loss_sum += losses.sum().item()
            self.predictions += logits.argmax(dim=-1).tolist()
            self.labels += targets.tolist()
            self.sums.add(losses, torch.ones_like(losses))
            return
        shifted_labels = targets[:, 1:]
        losses = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            shifted_labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view(shifted_labels.shape)  # an ignored token's loss is 0
        self.loss_sum += losses.sum().item()
        scored = (shifted_labels != IGNORE_INDEX).sum(dim=1)
        self.token_count += int(scored.sum())
        self.sums.add(losses.sum(dim=1), scored)

    def reduce(self, ranks: Ranks) -> None:
        """Sum the totals over the ranks and gather their predictions, so every rank holds them all."""
        if not ranks.distributed:
            return
        loss_sum, token_count, *sums = ranks.sum(
            [self.loss_sum, float(self.token_count), *self.sums.as_list()]
        )
        self.loss_sum, self.token_count = loss_sum, round(token_count)
        self.sums = LossSums.from_list(sums)
        if self.task == "sequence_classification":
            pairs = ranks.gather(list(zip(self.predictions, self.labels, strict=True)))
            self.predictions = [prediction for prediction, _ in pairs]
            self.labels = [label for _, label in pairs]

    def metrics(self) -> dict[str, float]:
        """Accuracy and macro-F1, or loss and perplexity, over every batch added."""
        if self.task == "sequence_classification":
            return classification_metrics(self.predictions, self.labels, self.loss_sum)
        return causal_lm_metrics(self.loss_sum, self.token_count)

    @property
    def examples(self) -> int:
        """The examples measured."""
        return self.sums.examples

    def stderr(self) -> dict[str, float]:
        """The standard error of each metric that has one (macro-F1 has none in closed form)."""
        metrics, loss_error = self.metrics(), self.sums.mean_stderr()
        if self.task == "sequence_classification":
            errors = {
                "accuracy": proportion_stderr(metrics["accuracy"], len(self.labels)),
                "loss": loss_error,
            }
        else:
            errors = {"loss": loss_error, "perplexity": perplexity_stderr(metrics["loss"], loss_error)}
        return {name: value for name, value in errors.items() if value is not None}


@dataclass
class SplitMeasures:
    """A model's metrics on each split, with their standard errors and the examples each covers."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    stderr: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)

    def add(self, split: str, totals: MetricTotals) -> None:
        """One split's totals."""
        self.metrics[split] = totals.metrics()
        self.stderr[split] = totals.stderr()
        self.examples[split] = totals.examples


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict[str, Tensor]],
    *,
    task: str,
    device: torch.device | str,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
    ranks: Ranks = SINGLE,
    counted: Sequence[bool] | None = None,
) -> dict[str, float]:
    """The task's metrics of `model` over the batches; the model's train/eval mode is restored after.

    Over several ranks each rank passes its share of the batches; a batch whose `counted` is False runs
    (so a sharded model's collectives stay in step) but adds nothing. The metrics cover every rank's.
    """
    totals = evaluate_totals(
        model, batches, task=task, device=device, autocast=autocast, ranks=ranks, counted=counted
    )
    return totals.metrics()


@torch.inference_mode()
def evaluate_totals(
    model: nn.Module,
    batches: Iterable[dict[str, Tensor]],
    *,
    task: str,
    device: torch.device | str,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
    ranks: Ranks = SINGLE,
    counted: Sequence[bool] | None = None,
) -> MetricTotals:
    """As `evaluate`, the totals themselves: metrics, their standard errors and the examples measured."""
    was_training = model.training
    model.eval()
    totals = MetricTotals(task)
    for index, batch in enumerate(batches):
        batch = {key: value.to(device) for key, value in batch.items()}
        targets = batch.pop("labels")
        with autocast():
            logits = model(**batch).logits.float()
        if counted is None or counted[index]:
            totals.add(logits, targets)
    model.train(was_training)
    totals.reduce(ranks)
    return totals


def evaluate_logits(batches: Iterable[tuple[Tensor, Tensor]], *, task: str) -> MetricTotals:
    """The task's totals from (logits, labels) batches computed before, such as a teacher's stored ones."""
    totals = MetricTotals(task)
    for logits, targets in batches:
        totals.add(logits.float(), targets)
    return totals
