"""`training.compile`: the student's forward compiled by torch.compile while it trains."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch._dynamo.exc import BackendCompilerFailed

from engine.errors import UserError

BACKEND = "inductor"


@contextmanager
def compiled_forward(model: nn.Module, *, enabled: bool) -> Iterator[None]:
    """Inside the block `model` runs a compiled forward; after it, the eager one, for saving and the report.

    Batches are padded to their longest example, so their length changes from batch to batch: the graph
    is compiled with symbolic shapes (dynamic=True), once, rather than once per length.
    """
    if not enabled:
        yield
        return
    model.forward = torch.compile(model.forward, dynamic=True, backend=BACKEND)
    try:
        yield
    except BackendCompilerFailed as error:  # Inductor's errors too, e.g. a C++ compiler missing
        raise UserError(
            f"training.compile failed on this worker ({first_line(error.inner_exception)}); train without it "
            "(training.compile false)",
            code="compile_failed",
            param="training.compile",
        ) from error
    finally:
        del model.forward


def first_line(error: BaseException) -> str:
    """The exception's type and the first line of its message (a compiler's output runs long)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
