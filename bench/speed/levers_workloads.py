"""The work `bench.speed.levers` times, run by the engine's own code: its training step, its evaluation."""

import copy
import random
from collections.abc import Callable

import datasets
import torch
from torch import Tensor
from transformers import PreTrainedModel

from app.cli.quickstart.tweets import load_tweets
from distillery.jobspec import SupervisedMethod, TrainingSpec
from engine.batching import eval_batch_order, iterate_batches
from engine.distributed.ranks import SINGLE
from engine.distributed.wrap import make_parallel
from engine.evaluation import evaluate
from engine.methods.base import MethodContext
from engine.methods.supervised import SupervisedDistillation
from engine.training.loop import train_step
from engine.training.optimization import build_optimizer, build_scheduler
from engine.training.precision import PrecisionChoice

CPU = torch.device("cpu")
LABELS = 3
# torch's AdamW implementations; the default on CPU tensors is a for-loop over the parameters.
ADAMW: dict[str, dict[str, bool | None]] = {
    "default": {"foreach": None},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def supervised(student: PreTrainedModel) -> SupervisedDistillation:
    """The engine's supervised method around the student: cross-entropy on the labels."""
    context = MethodContext(
        task="sequence_classification",
        student=student,
        teacher=None,
        new_student=lambda seed: student,
        num_labels=LABELS,
    )
    return SupervisedDistillation(SupervisedMethod(), context).train()


def training_pass(
    method: SupervisedDistillation,
    batches: list[dict[str, Tensor]],
    training: TrainingSpec,
    precision: PrecisionChoice,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    device: torch.device = CPU,
) -> Callable[[], None]:
    """One engine training step on each batch in turn; the engine's AdamW unless another is given."""
    optimizer = optimizer or build_optimizer(method, training)
    scheduler = build_scheduler(optimizer, training, total_steps=1_000_000)
    single = make_parallel(method, "single", SINGLE)

    def run() -> None:
        for batch in batches:
            train_step(
                single,
                [(batch, 1.0)],
                SINGLE,
                optimizer,
                scheduler,
                training=training,
                device=device,
                autocast=precision.autocast,
                step=0,
            )

    return run


def eval_dataset(tokenizer: object, *, rows: int, max_length: int, seed: int) -> datasets.Dataset:
    """`rows` tweets drawn at random, tokenised as the engine stores them (ids, mask, label, length)."""
    tweets = random.Random(seed).sample(load_tweets(), rows)
    encoded = tokenizer([tweet["text"] for tweet in tweets], max_length=max_length, truncation=True)  # type: ignore[operator]
    names = sorted({tweet["label"] for tweet in tweets})
    return datasets.Dataset.from_dict(
        {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": [names.index(tweet["label"]) % LABELS for tweet in tweets],
            "length": [len(ids) for ids in encoded["input_ids"]],
        }
    )


def eval_pass(
    model: PreTrainedModel,
    dataset: datasets.Dataset,
    batch_size: int,
    precision: PrecisionChoice,
    *,
    pad_token_id: int,
) -> Callable[[], dict[str, float]]:
    """The engine's evaluation over the dataset, in batches of similar lengths, collation included."""
    order = eval_batch_order(list(dataset["length"]), batch_size)

    def run() -> dict[str, float]:
        batches = iterate_batches(dataset, order, pad_token_id=pad_token_id)
        return evaluate(
            model, batches, task="sequence_classification", device=CPU, autocast=precision.autocast
        )

    return run


def graphs_compiled() -> int:
    """Graphs torch.compile has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def adamw_variant(optimizer: torch.optim.Optimizer, flags: dict[str, bool | None]) -> torch.optim.Optimizer:
    """The engine's optimiser (same parameter groups) switched to one AdamW implementation."""
    for group in optimizer.param_groups:
        group.update({"fused": None, "foreach": None, **flags})
    return optimizer


def with_gradients(model: PreTrainedModel, seed: int) -> PreTrainedModel:
    """The model with fixed random gradients, so an optimiser step alone has work to do."""
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        param.grad = torch.randn(param.shape, generator=generator) * 1e-3
    return model


def adamw_difference(student: PreTrainedModel, training: TrainingSpec, steps: int = 10) -> float:
    """Largest parameter difference between the fused and the default AdamW after the same steps."""
    fused, default = copy.deepcopy(student), copy.deepcopy(student)
    optimizers = [build_optimizer(fused, training), adamw_variant(build_optimizer(default, training), {})]
    for step in range(steps):
        for model, optimizer in zip((fused, default), optimizers, strict=True):
            with_gradients(model, seed=step)
            optimizer.step()
    return max(
        float((a - b).abs().max().detach())
        for a, b in zip(fused.parameters(), default.parameters(), strict=True)
    )
