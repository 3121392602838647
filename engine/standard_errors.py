"""Standard errors of evaluation metrics, from sums that add up over batches and over ranks.

Each example is one sampling unit, also for a language model: the tokens of one text are correlated,
so treating them as independent would understate the noise. A mean loss over tokens is then a ratio of
two sums over examples (loss sum over token count), whose standard error is the usual one of a ratio
estimator: sqrt(n / (n - 1) * sum_i (L_i - r T_i)^2) / sum_i T_i, with L_i an example's loss sum, T_i
its scored tokens (1 for a classifier) and r the mean loss. Expanded, it needs only sum L_i, sum T_i,
sum L_i^2, sum L_i T_i and sum T_i^2, each of which a rank can add to its peers'.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Past this mean loss, perplexity is capped (exp(50)), so is its standard error.
MAX_LOSS = 50.0


@dataclass
class LossSums:
    """Per-example sums of a loss and of its scored tokens, enough for the mean and its standard error."""

    examples: int = 0
    loss: float = 0.0
    tokens: float = 0.0
    loss_squares: float = 0.0
    loss_tokens: float = 0.0
    token_squares: float = 0.0

    def add(self, losses: Tensor, tokens: Tensor) -> None:
        """One batch: each example's summed loss and its number of scored tokens (float tensors)."""
        losses, tokens = losses.double(), tokens.double()
        sums = torch.stack([losses, tokens, losses * losses, losses * tokens, tokens * tokens]).sum(dim=1)
        loss, token_count, loss_squares, loss_tokens, token_squares = sums.tolist()  # one device sync
        self.examples += int(losses.numel())
        self.loss += loss
        self.tokens += token_count
        self.loss_squares += loss_squares
        self.loss_tokens += loss_tokens
        self.token_squares += token_squares

    def as_list(self) -> list[float]:
        """The sums in a fixed order, to add up over ranks."""
        return [
            float(self.examples),
            self.loss,
            self.tokens,
            self.loss_squares,
            self.loss_tokens,
            self.token_squares,
        ]

    @classmethod
    def from_list(cls, values: list[float]) -> "LossSums":
        """The sums from `as_list`'s order (after adding them up over ranks)."""
        examples, *rest = values
        return cls(round(examples), *rest)

    def mean_stderr(self) -> float | None:
        """The standard error of the mean loss per token; None with fewer than two examples."""
        if self.examples < 2 or self.tokens <= 0:
            return None
        ratio = self.loss / self.tokens
        squares = self.loss_squares - 2 * ratio * self.loss_tokens + ratio * ratio * self.token_squares
        correction = self.examples / (self.examples - 1)
        return math.sqrt(max(squares, 0.0) * correction) / self.tokens


def proportion_stderr(proportion: float, count: int) -> float | None:
    """Binomial standard error of a proportion (such as accuracy) over `count` examples."""
    if count < 1:
        return None
    return math.sqrt(max(proportion * (1 - proportion), 0.0) / count)


def perplexity_stderr(loss: float, loss_stderr: float | None) -> float | None:
    """The delta method: perplexity exp(loss) moves by exp(loss) times the loss's standard error."""
    if loss_stderr is None:
        return None
    return math.exp(min(loss, MAX_LOSS)) * loss_stderr
