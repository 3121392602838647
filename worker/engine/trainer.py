"""The training loop shared by every method: a method supplies the loss, the loop does the rest.

Read top to bottom: plan the steps, build the optimiser and schedule, resume if a checkpoint exists,
then for each optimiser step accumulate gradients over a few batches, clip, step, log, and now and
then evaluate, keep the best checkpoint and stop early. At the end the best weights are put back.
"""

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from distillery.spec import TrainingSpec
from worker.engine.batching import epoch_batch_order, eval_batch_order, eval_batch_size, iterate_batches
from worker.engine.callbacks import Callbacks
from worker.engine.checkpointing import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    load_method_weights,
    save_checkpoint,
)
from worker.engine.curves import MetricsLog
from worker.engine.data import PreparedData
from worker.engine.errors import UserError
from worker.engine.evaluation import PRIMARY_METRIC, evaluate, is_improvement
from worker.engine.methods.base import Method
from worker.engine.optimization import build_optimizer, build_scheduler, seed_everything
from worker.engine.precision import PrecisionChoice

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
) -> TrainResult:
    """Train `method` on `data` as `training` says, in `precision`; resume from a checkpoint if one exists."""
    task = method.task
    batches_per_epoch = math.ceil(len(data.train) / training.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / training.gradient_accumulation_steps)
    total_steps = steps_per_epoch * training.epochs
    if training.max_steps is not None:
        total_steps = min(total_steps, training.max_steps)
    log_every = max(1, min(50, total_steps // 20))
    lengths = list(data.train["length"])
    eval_batch = eval_batch_size(
        task, batch_size=training.batch_size, eval_batch_size=training.eval_batch_size
    )
    eval_order = eval_batch_order(list(data.eval["length"]), eval_batch)
    autocast = precision.autocast

    seed_everything(training.seed)
    optimizer = build_optimizer(method, training)
    scheduler = build_scheduler(optimizer, training, total_steps)
    state = TrainState()
    latest = latest_checkpoint(checkpoint_dir)
    if latest is not None:
        state = load_checkpoint(latest, method=method, optimizer=optimizer, scheduler=scheduler)
        callbacks.on_message(f"resumed from the checkpoint at step {state.step}")
    metrics_log.truncate_after(state.step)
    method.train()

    def run_evaluation() -> dict[str, float]:
        batches = iterate_batches(data.eval, eval_order, pad_token_id=data.pad_token_id)
        return evaluate(method.student, batches, task=task, device=device, autocast=autocast)

    window: dict[str, list[float]] = defaultdict(list)
    last_eval_step = state.step if latest is not None else -1
    stop_early = False
    while state.step < total_steps and state.epoch < training.epochs and not stop_early:
        if state.batch_order is None:
            state.batch_order = epoch_batch_order(
                lengths,
                training.batch_size,
                seed=training.seed,
                epoch=state.epoch,
                group_by_length=training.group_by_length,
            )
        order = state.batch_order
        batches = iterate_batches(
            data.train, order, pad_token_id=data.pad_token_id, start=state.batch_index, with_index=True
        )
        while state.batch_index < len(order) and state.step < total_steps:
            if callbacks.should_stop():
                callbacks.on_message(f"stopped at step {state.step} on request")
                return TrainResult("cancelled", state)
            group = list(islice(batches, training.gradient_accumulation_steps))
            terms = train_step(
                method,
                group,
                optimizer,
                scheduler,
                training=training,
                device=device,
                autocast=autocast,
                step=state.step,
            )
            state.step += 1
            state.batch_index += len(group)
            epoch_done = state.batch_index >= len(order)
            epoch = state.epoch + state.batch_index / len(order)
            callbacks.on_progress(step=state.step, total_steps=total_steps, epoch=epoch)
            metrics_log.append(step=state.step, epoch=epoch, split="train", metrics=terms)
            for name, value in terms.items():
                window[name].append(value)
            if state.step % log_every == 0 or state.step == total_steps:
                averaged = {name: sum(values) / len(values) for name, values in window.items()}
                callbacks.on_metrics(step=state.step, epoch=epoch, split="train", metrics=averaged)
                window.clear()

            if epoch_done:  # the checkpoint's data position points at the next epoch
                state.epoch, state.batch_index, state.batch_order = state.epoch + 1, 0, None
            evaluate_now = (
                state.step % training.eval_every_steps == 0 if training.eval_every_steps else epoch_done
            ) or state.step == total_steps
            improved = False
            if evaluate_now:
                metrics = run_evaluation()
                last_eval_step = state.step
                metrics_log.append(step=state.step, epoch=epoch, split="eval", metrics=metrics)
                callbacks.on_metrics(step=state.step, epoch=epoch, split="eval", metrics=metrics)
                callbacks.on_message(describe_evaluation(task, metrics, state, training, epoch_done))
                improved = record_evaluation(state, task, metrics)
                patience = training.early_stopping_patience
                if patience is not None and state.evals_without_improvement >= patience:
                    callbacks.on_message(f"early stopping: no improvement in {patience} evaluations")
                    stop_early = True
            checkpoint_now = (
                improved
                or stop_early
                or state.step == total_steps
                or (
                    state.step % training.checkpoint_every_steps == 0
                    if training.checkpoint_every_steps
                    else evaluate_now
                )
            )
            if checkpoint_now:
                path = save_checkpoint(
                    checkpoint_dir, method=method, optimizer=optimizer, scheduler=scheduler, state=state
                )
                callbacks.on_checkpoint(
                    step=state.step,
                    epoch=epoch,
                    path=path,
                    metrics=state.best_metrics,
                    is_best=state.best_step == state.step,
                )
            if stop_early or epoch_done:
                break

    if last_eval_step != state.step:  # resumed at the very end, or the last step was not evaluated
        record_evaluation(state, task, run_evaluation())
    if state.best_step is not None and state.best_step != state.step:
        load_method_weights(checkpoint_dir / f"step-{state.best_step}", method)
        callbacks.on_message(f"kept the best checkpoint, from step {state.best_step}")
    return TrainResult("succeeded", state, eval_metrics=dict(state.best_metrics))


def train_step(
    method: Method,
    group: list[dict[str, Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    training: TrainingSpec,
    device: torch.device,
    autocast: Autocast,
    step: int,
) -> dict[str, float]:
    """One optimiser step over a group of batches (gradient accumulation); returns the mean loss terms."""
    terms: dict[str, float] = defaultdict(float)
    for batch in _on_device(group, device):
        with autocast():
            loss, batch_terms = method.training_loss(batch)
        if not torch.isfinite(loss):
            raise UserError(
                f"training diverged: the loss is {loss.item()} at step {step + 1}; try a lower learning rate",
                code="diverged",
                param="training.learning_rate",
            )
        (loss / len(group)).backward()
        for name, value in batch_terms.items():
            terms[name] += value / len(group)
    trainable = [param for param in method.parameters() if param.requires_grad]
    if training.max_grad_norm is not None:
        terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(trainable, training.max_grad_norm))
    terms["lr"] = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return dict(terms)


def _on_device(group: list[dict[str, Tensor]], device: torch.device) -> Iterator[dict[str, Tensor]]:
    for batch in group:
        yield {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def record_evaluation(state: TrainState, task: str, metrics: dict[str, float]) -> bool:
    """Update the best-metric state with one evaluation; True if it is the new best."""
    name = PRIMARY_METRIC[task][0]
    if is_improvement(task, metrics[name], state.best_metric):
        state.best_metric, state.best_step, state.best_metrics = metrics[name], state.step, dict(metrics)
        state.evals_without_improvement = 0
        return True
    state.evals_without_improvement += 1
    return False


def describe_evaluation(
    task: str, metrics: dict[str, float], state: TrainState, training: TrainingSpec, epoch_done: bool
) -> str:
    """A log line such as `epoch 1/3 eval accuracy 0.81` or `step 200 eval loss 2.31`."""
    name = PRIMARY_METRIC[task][0]
    where = f"epoch {state.epoch}/{training.epochs}" if epoch_done else f"step {state.step}"
    extra = f" macro-F1 {metrics['macro_f1']:.3f}" if "macro_f1" in metrics else ""
    extra += f" perplexity {metrics['perplexity']:.2f}" if "perplexity" in metrics else ""
    return f"{where} eval {name} {metrics[name]:.4f}{extra}"
