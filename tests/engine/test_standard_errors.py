"""Standard errors of the evaluation metrics: binomial for accuracy, per example for losses, delta method
for perplexity; their sums add up over batches and ranks."""

import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from engine.evaluation import MetricTotals
from engine.standard_errors import LossSums


def test_a_classifier_has_binomial_accuracy_and_per_example_loss_errors():
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(40, 3, generator=generator), torch.randint(0, 3, (40,), generator=generator)
    totals = MetricTotals("sequence_classification")
    for start in range(0, 40, 16):
        totals.add(logits[start : start + 16], labels[start : start + 16])

    errors, metrics = totals.stderr(), totals.metrics()

    accuracy = metrics["accuracy"]
    assert errors["accuracy"] == pytest.approx(math.sqrt(accuracy * (1 - accuracy) / 40))
    losses = F.cross_entropy(logits, labels, reduction="none").tolist()
    assert errors["loss"] == pytest.approx(statistics.stdev(losses) / math.sqrt(40))
    assert "macro_f1" not in errors and totals.examples == 40


def test_a_language_models_errors_treat_each_text_as_one_sample_and_perplexity_follows_the_delta_method():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 9, 11, generator=generator)
    labels = torch.randint(0, 11, (6, 9), generator=generator)
    labels[0, 4:] = -100  # shorter texts score fewer tokens
    labels[3, 2:] = -100
    totals = MetricTotals("causal_lm")
    totals.add(logits[:4], labels[:4])
    totals.add(logits[4:], labels[4:])

    errors, metrics = totals.stderr(), totals.metrics()

    per_token = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), reduction="none")
    sums = per_token.view(6, 8).sum(dim=1).double()
    counts = (labels[:, 1:] != -100).sum(dim=1).double()
    ratio = float(sums.sum() / counts.sum())
    # The ratio estimator's standard error, written out from its definition.
    expected = math.sqrt(6 / 5 * float(((sums - ratio * counts) ** 2).sum())) / float(counts.sum())
    assert metrics["loss"] == pytest.approx(ratio)
    assert errors["loss"] == pytest.approx(expected)
    assert errors["perplexity"] == pytest.approx(math.exp(ratio) * expected)
    assert totals.examples == 6


def test_sums_of_two_shares_give_the_errors_of_the_whole_as_over_two_ranks():
    losses, tokens = torch.tensor([2.0, 5.0, 1.0, 7.0, 3.0]), torch.tensor([2.0, 4.0, 1.0, 5.0, 3.0])
    whole, first, second = LossSums(), LossSums(), LossSums()
    whole.add(losses, tokens)
    first.add(losses[:2], tokens[:2])
    second.add(losses[2:], tokens[2:])

    added = LossSums.from_list([a + b for a, b in zip(first.as_list(), second.as_list(), strict=True)])

    assert added == whole and added.mean_stderr() == pytest.approx(whole.mean_stderr())


def test_one_example_has_no_loss_error():
    totals = MetricTotals("sequence_classification")
    totals.add(torch.tensor([[0.2, 0.9]]), torch.tensor([1]))
    assert totals.stderr() == {"accuracy": 0.0}
