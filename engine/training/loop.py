"""The training loop shared by every method: a method supplies the loss, the loop does the rest.

Read top to bottom: plan the steps, build the optimiser and schedule, resume if a checkpoint exists,
then for each optimiser step accumulate gradients over a few batches, clip, step, log, and, when the
checkpoint policy says so, evaluate, keep a checkpoint or stop early. At the end the best weights are
put back.

Over several processes every rank runs this same loop on its share of each global batch
(`engine.distributed.sharding`): the decisions (stop, evaluate, checkpoint, stop early) follow the step
count and rank 0's answers and metrics, so every rank takes them at the same step.
"""

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.distributed.tensor import DTensor

from distillery.jobspec import TrainingSpec
from engine.batching import (
    epoch_batch_order,
    eval_batch_order,
    eval_batch_size,
    examples_and_tokens,
    iterate_batches,
)
from engine.callbacks import Callbacks
from engine.curves import MetricsLog
from engine.data import PreparedData
from engine.distributed.ranks import SINGLE, Ranks
from engine.distributed.sharding import shard_batches
from engine.distributed.wrap import Parallelism, ParallelMethod, make_parallel
from engine.errors import UserError
from engine.evaluation import evaluate
from engine.lm.packing import Packing
from engine.methods.base import Method
from engine.training.checkpoint_policy import CheckpointPolicy, describe_evaluation, record_evaluation
from engine.training.checkpointing import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    load_method_weights,
    save_checkpoint,
)
from engine.training.optimization import build_optimizer, build_scheduler, seed_everything
from engine.training.precision import PrecisionChoice

logger = logging.getLogger(__name__)

Autocast = Callable[[], AbstractContextManager[object]]


@dataclass
class TrainResult:
    """How training ended, its final state and the eval metrics of the weights it kept."""

    status: Literal["succeeded", "cancelled"]
    state: TrainState
    eval_metrics: dict[str, float] = field(default_factory=dict)


def train(
    method: Method,
    data: PreparedData,
    *,
    training: TrainingSpec,
    device: torch.device,
    precision: PrecisionChoice,
    checkpoint_dir: Path,
    metrics_log: MetricsLog,
    callbacks: Callbacks,
    ranks: Ranks = SINGLE,
    parallelism: Parallelism = "single",
    packing: Packing | None = None,
) -> TrainResult:
    """Train `method` on `data` as `training` says, in `precision`; resume from a checkpoint if one exists.

    Over several ranks `callbacks` must be one whose `should_stop` every rank calls (MainRankCallbacks).
    With `packing` the train batches are packed (evaluation stays padded).
    """
    total_steps = planned_steps(training, len(data.train))
    seed_everything(training.seed)
    parallel = make_parallel(method, parallelism, ranks)
    optimizer = build_optimizer(method, training)
    scheduler = build_scheduler(optimizer, training, total_steps)
    state = TrainState()
    latest = latest_checkpoint(checkpoint_dir)
    if latest is not None:
        state = load_checkpoint(latest, method=method, optimizer=optimizer, scheduler=scheduler)
        callbacks.on_message(f"resumed from the checkpoint at step {state.step}")
    if ranks.is_main:
        metrics_log.truncate_after(state.step)
    method.train()
    loop = TrainingLoop(
        method=method,
        parallel=parallel,
        ranks=ranks,
        data=data,
        training=training,
        device=device,
        autocast=precision.autocast,
        checkpoint_dir=checkpoint_dir,
        metrics_log=metrics_log,
        callbacks=callbacks,
        optimizer=optimizer,
        scheduler=scheduler,
        state=state,
        policy=CheckpointPolicy(training, total_steps),
        last_eval_step=state.step if latest is not None else -1,
        packing=packing,
    )
    while state.step < total_steps and state.epoch < training.epochs:
        ending = loop.run_epoch()
        if ending == "cancelled":
            return TrainResult("cancelled", state)
        if ending == "stopped early":
            break
    loop.finish()
    return TrainResult("succeeded", state, eval_metrics=dict(state.best_metrics))


@dataclass
class TrainingLoop:
    """The state one `train` call works on, and its steps: an epoch, an optimiser step, an evaluation."""

    method: Method
    parallel: ParallelMethod
    ranks: Ranks
    data: PreparedData
    training: TrainingSpec
    device: torch.device
    autocast: Autocast
    checkpoint_dir: Path
    metrics_log: MetricsLog
    callbacks: Callbacks
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state: TrainState
    policy: CheckpointPolicy
    last_eval_step: int
    packing: Packing | None = None
    window: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    throughput: "Throughput" = field(default_factory=lambda: Throughput())

    def run_epoch(self) -> Literal["epoch done", "cancelled", "stopped early", "last step"]:
        """Train from where the state points to the end of its epoch (or the last step, or a stop)."""
        state, training = self.state, self.training
        if state.batch_order is None:
            state.batch_order = epoch_batch_order(
                list(self.data.train["length"]),
                training.batch_size,
                seed=training.seed,
                epoch=state.epoch,
                group_by_length=training.group_by_length,
            )
        order = state.batch_order
        shares, weights = shard_batches(order, self.ranks)
        batches = zip(
            iterate_batches(
                self.data.train,
                shares,
                pad_token_id=self.data.pad_token_id,
                start=state.batch_index,
                with_index=True,
                packing=self.packing,
            ),
            weights[state.batch_index :],
            strict=True,
        )
        while state.batch_index < len(order) and state.step < self.policy.total_steps:
            if self.callbacks.should_stop():
                self.callbacks.on_message(f"stopped at step {state.step} on request")
                return "cancelled"
            epoch_done, epoch = self.optimizer_step(
                list(islice(batches, training.gradient_accumulation_steps))
            )
            if self.after_step(epoch_done=epoch_done, epoch=epoch):
                return "stopped early"
            if epoch_done:
                return "epoch done"
        return "last step"

    def optimizer_step(self, group: list[tuple[dict[str, Tensor], float]]) -> tuple[bool, float]:
        """One optimiser step over a group of batches, logged; whether it ended the epoch, and the epoch."""
        state = self.state
        started = time.perf_counter()
        terms = train_step(
            self.parallel,
            group,
            self.ranks,
            self.optimizer,
            self.scheduler,
            training=self.training,
            device=self.device,
            autocast=self.autocast,
            step=state.step,
        )
        self.throughput.add(group, seconds=time.perf_counter() - started)
        assert state.batch_order is not None
        batches = len(state.batch_order)
        state.step += 1
        state.batch_index += len(group)
        epoch_done = state.batch_index >= batches
        epoch = state.epoch + state.batch_index / batches
        self.callbacks.on_progress(step=state.step, total_steps=self.policy.total_steps, epoch=epoch)
        if self.ranks.is_main:
            self.metrics_log.append(step=state.step, epoch=epoch, split="train", metrics=terms)
        self.log_averages(terms, epoch)
        if epoch_done:  # the checkpoint's data position points at the next epoch
            state.epoch, state.batch_index, state.batch_order = state.epoch + 1, 0, None
        return epoch_done, epoch

    def log_averages(self, terms: dict[str, float], epoch: float) -> None:
        """Report the loss terms averaged over the steps since the last report, every few steps."""
        for name, value in terms.items():
            self.window[name].append(value)
        step, total = self.state.step, self.policy.total_steps
        if step % max(1, min(50, total // 20)) == 0 or step == total:
            averaged = {name: sum(values) / len(values) for name, values in self.window.items()}
            averaged.update(self.throughput.rates(self.ranks))
            self.callbacks.on_metrics(step=step, epoch=epoch, split="train", metrics=averaged)
            self.window.clear()

    def after_step(self, *, epoch_done: bool, epoch: float) -> bool:
        """Evaluate and checkpoint as the policy says; True when training should stop early."""
        state, evaluated, improved, stopping = self.state, False, False, False
        if self.policy.evaluate_now(state.step, epoch_done=epoch_done):
            metrics = self.evaluate()
            evaluated, self.last_eval_step = True, state.step
            if self.ranks.is_main:
                self.metrics_log.append(step=state.step, epoch=epoch, split="eval", metrics=metrics)
            self.callbacks.on_metrics(step=state.step, epoch=epoch, split="eval", metrics=metrics)
            task = self.method.task
            self.callbacks.on_message(describe_evaluation(task, metrics, state, self.training, epoch_done))
            improved = record_evaluation(state, task, metrics)
            stopping = self.policy.stop_early(state)
            if stopping:
                patience = self.training.early_stopping_patience
                self.callbacks.on_message(f"early stopping: no improvement in {patience} evaluations")
        if self.policy.checkpoint_now(state.step, evaluated=evaluated, improved=improved, stopping=stopping):
            self.save_checkpoint(epoch)
        return stopping

    def evaluate(self) -> dict[str, float]:
        """The student's metrics on the eval set, each rank evaluating its share of every batch.

        Every rank takes rank 0's metrics, so the policy's decisions cannot differ by a rounding.
        """
        training = self.training
        size = eval_batch_size(
            self.method.task, batch_size=training.batch_size, eval_batch_size=training.eval_batch_size
        )
        order = eval_batch_order(list(self.data.eval["length"]), size)
        shares, weights = shard_batches(order, self.ranks)
        batches = iterate_batches(self.data.eval, shares, pad_token_id=self.data.pad_token_id)
        metrics = evaluate(
            self.method.student,
            batches,
            task=self.method.task,
            device=self.device,
            autocast=self.autocast,
            ranks=self.ranks,
            counted=[weight > 0 for weight in weights],
        )
        return self.ranks.broadcast_object(metrics)

    def save_checkpoint(self, epoch: float) -> None:
        """Write a resumable checkpoint and report it."""
        state = self.state
        path = save_checkpoint(
            self.checkpoint_dir,
            method=self.method,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=state,
            ranks=self.ranks,
            sharded=self.parallel.parallelism == "fsdp",
        )
        self.callbacks.on_checkpoint(
            step=state.step,
            epoch=epoch,
            path=path,
            metrics=state.best_metrics,
            is_best=state.best_step == state.step,
        )

    def finish(self) -> None:
        """Evaluate the last step if it was not, and put the best checkpoint's weights back."""
        state = self.state
        if self.last_eval_step != state.step:  # resumed at the very end, or the last step was not evaluated
            record_evaluation(state, self.method.task, self.evaluate())
        if state.best_step is not None and state.best_step != state.step:
            load_method_weights(self.checkpoint_dir / f"step-{state.best_step}", self.method)
            self.callbacks.on_message(f"kept the best checkpoint, from step {state.best_step}")


@dataclass
class Throughput:
    """Examples and tokens (padding left out) trained on since the last report, and the seconds it took.

    Only the training steps are timed: evaluations and checkpoints in between do not lower the rate.
    """

    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, group: list[tuple[dict[str, Tensor], float]], *, seconds: float) -> None:
        """Count one optimiser step's batches (a rank's stand-in example, of weight 0, does not count)."""
        for batch, weight in group:
            if weight == 0:
                continue
            examples, tokens = examples_and_tokens(batch)
            self.examples += examples
            self.tokens += tokens
        self.seconds += seconds

    def rates(self, ranks: Ranks = SINGLE) -> dict[str, float]:
        """`examples_per_second` and `tokens_per_second` since the last call, which starts a new window.

        Over several ranks: every rank's examples and tokens over the slowest rank's seconds.
        """
        examples, tokens = ranks.sum([float(self.examples), float(self.tokens)])
        seconds = max(ranks.maximum(self.seconds), 1e-9)
        rates = {"examples_per_second": examples / seconds, "tokens_per_second": tokens / seconds}
        self.examples, self.tokens, self.seconds = 0, 0, 0.0
        return rates


def planned_steps(training: TrainingSpec, train_examples: int) -> int:
    """Optimiser steps the run will take: its epochs, cut at max_steps."""
    batches_per_epoch = math.ceil(train_examples / training.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / training.gradient_accumulation_steps)
    total_steps = steps_per_epoch * training.epochs
    return total_steps if training.max_steps is None else min(total_steps, training.max_steps)


def planned_examples(training: TrainingSpec, train_examples: int) -> int:
    """Train examples the run will show the model, counting repeats over epochs."""
    per_step = training.batch_size * training.gradient_accumulation_steps
    return min(planned_steps(training, train_examples) * per_step, training.epochs * train_examples)


def train_step(
    parallel: ParallelMethod,
    group: list[tuple[dict[str, Tensor], float]],
    ranks: Ranks,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    training: TrainingSpec,
    device: torch.device,
    autocast: Autocast,
    step: int,
) -> dict[str, float]:
    """One optimiser step over a group of batches (gradient accumulation); returns the mean loss terms.

    Each batch comes with its weight in the global batch (1 in one process); gradients are synchronised
    over the ranks on the group's last batch only, and the terms are the global batch's means.
    """
    terms: dict[str, float] = defaultdict(float)
    nonfinite = 0.0
    for index, (batch, weight) in enumerate(_on_device(group, device)):
        with parallel.gradient_sync(index == len(group) - 1):
            with autocast():
                loss, batch_terms = parallel.loss(batch)
            if not torch.isfinite(loss):
                if not ranks.distributed:
                    _diverged(loss.item(), step)
                nonfinite += 1  # every rank learns of it from the reduced terms, and stops at once
            (loss / len(group) * weight).backward()
        for name, value in batch_terms.items():
            terms[name] += value * weight / ranks.world_size / len(group)
    terms = _global_means(terms, nonfinite, ranks, step)
    trainable = [param for param in parallel.method.parameters() if param.requires_grad]
    if training.max_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(trainable, training.max_grad_norm)
        terms["grad_norm"] = float(norm.full_tensor() if isinstance(norm, DTensor) else norm)
    terms["lr"] = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return dict(terms)


def _global_means(terms: dict[str, float], nonfinite: float, ranks: Ranks, step: int) -> dict[str, float]:
    """The terms summed over the ranks (each already weighted by its share); diverged if any rank's was."""
    if not ranks.distributed:
        return dict(terms)
    names = sorted(terms)
    *values, nonfinite = ranks.sum([terms[name] for name in names] + [nonfinite])
    if nonfinite:
        _diverged(float("nan"), step)
    return dict(zip(names, values, strict=True))


def _diverged(loss: float, step: int) -> None:
    raise UserError(
        f"training diverged: the loss is {loss} at step {step + 1}; try a lower learning rate",
        code="diverged",
        param="training.learning_rate",
    )


def _on_device(
    group: list[tuple[dict[str, Tensor], float]], device: torch.device
) -> Iterator[tuple[dict[str, Tensor], float]]:
    for batch, weight in group:
        yield {key: value.to(device, non_blocking=True) for key, value in batch.items()}, weight
