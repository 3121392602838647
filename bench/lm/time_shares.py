"""Where a training run's time goes, measured alike on both sides of a peer benchmark.

Global module hooks time the teacher's and the student's forwards (told apart by depth; hooks, since
accelerate replaces a prepared model's `forward` on the instance), and class-level wrappers time
sampling, the loss, backward and the optimiser step. Only the outermost timed call counts, so the
forwards of sampling are sampling's and the shares add up to at most the wall time.
"""

import inspect
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import GPT2LMHeadModel


class TimeShares:
    """Seconds per section of the outermost timed calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth = 0
        self.frozen: dict[str, float] | None = None

    def freeze(self) -> None:
        """Keep the seconds as they are now: the wall time ends here, whatever runs after."""
        self.frozen = dict(self.seconds)

    def timed(self, section: Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
        """`function`, its time added to `section(*args)` when no other timed call encloses it."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = self.start()
            try:
                return function(*args, **kwargs)
            finally:
                self.stop(section(*args), started)

        return wrapper

    def start(self) -> float | None:
        """Enter a timed call; its start time when it is the outermost."""
        self.depth += 1
        return time.perf_counter() if self.depth == 1 else None

    def stop(self, section: str, started: float | None) -> None:
        """Leave a timed call, adding its time to `section` when it was the outermost."""
        self.depth -= 1
        if started is not None:
            self.seconds[section] += time.perf_counter() - started

    def summary(self, wall: float) -> dict[str, float]:
        """Seconds per section and the rest of the wall time (data, scheduling, evaluation, overhead)."""
        seconds = self.frozen if self.frozen is not None else self.seconds
        shares = {name: round(value, 2) for name, value in sorted(seconds.items())}
        return {**shares, "other": round(wall - sum(seconds.values()), 2)}


@contextmanager
def measured(
    shares: TimeShares, *, teacher_layers: int, extra: dict[tuple[Any, str], str] | None = None
) -> Iterator[TimeShares]:
    """Time the sections while inside; `extra` maps (owner, attribute) to a section name."""

    starts: list[float | None] = []

    def before(module: Any, *_: Any) -> None:
        if isinstance(module, GPT2LMHeadModel):
            starts.append(shares.start())

    def after(module: Any, *_: Any) -> None:
        if isinstance(module, GPT2LMHeadModel):
            teacher = module.config.n_layer == teacher_layers
            shares.stop("teacher forward" if teacher else "student forward", starts.pop())

    targets: dict[tuple[Any, str], Callable[..., str]] = {
        (GPT2LMHeadModel, "generate"): lambda *_: "sampling",
        (torch.autograd, "backward"): lambda *_: "backward",
        (torch.optim.AdamW, "step"): lambda *_: "optimizer step",
    }
    for target, name in (extra or {}).items():
        targets[target] = lambda *_, name=name: name
    originals = {target: inspect.getattr_static(*target) for target in targets}
    hooks = [
        torch.nn.modules.module.register_module_forward_pre_hook(before),
        torch.nn.modules.module.register_module_forward_hook(after),
    ]
    try:
        for (owner, attribute), section in targets.items():
            wrapped = shares.timed(section, getattr(owner, attribute))
            static = isinstance(originals[(owner, attribute)], staticmethod)
            setattr(owner, attribute, staticmethod(wrapped) if static else wrapped)
        yield shares
    finally:
        for hook in hooks:
            hook.remove()
        for (owner, attribute), original in originals.items():
            setattr(owner, attribute, original)
