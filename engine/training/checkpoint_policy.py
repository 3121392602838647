"""When training evaluates, keeps a checkpoint and stops early: decided here, applied by the loop."""

from dataclasses import dataclass

from distillery.jobspec import TrainingSpec
from engine.evaluation import PRIMARY_METRIC, is_improvement
from engine.training.checkpointing import TrainState


@dataclass(frozen=True)
class CheckpointPolicy:
    """The training spec's evaluation, checkpoint and early-stopping rules for a run of `total_steps`."""

    training: TrainingSpec
    total_steps: int

    def evaluate_now(self, step: int, *, epoch_done: bool) -> bool:
        """Every `eval_every_steps`, else at each epoch's end; always at the last step."""
        every = self.training.eval_every_steps
        return (step % every == 0 if every else epoch_done) or step == self.total_steps

    def checkpoint_now(self, step: int, *, evaluated: bool, improved: bool, stopping: bool) -> bool:
        """On a new best, when stopping, at the last step, and every `checkpoint_every_steps` (default: each
        evaluation)."""
        every = self.training.checkpoint_every_steps
        periodic = step % every == 0 if every else evaluated
        return improved or stopping or step == self.total_steps or periodic

    def stop_early(self, state: TrainState) -> bool:
        """Whether `early_stopping_patience` evaluations in a row brought no improvement."""
        patience = self.training.early_stopping_patience
        return patience is not None and state.evals_without_improvement >= patience


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
