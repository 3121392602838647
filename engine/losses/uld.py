"""Universal Logit Distillation (Boizard et al. 2024): matching distributions over different vocabularies."""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.losses.masking import compute_dtype, outside_autocast, zero_loss


@dataclass(frozen=True)
class SharedTokens:
    """Tokens both vocabularies hold (the same string): their ids in the teacher's and the student's."""

    teacher_ids: Tensor
    student_ids: Tensor

    def to(self, device: torch.device | str) -> "SharedTokens":
        """The same ids on `device`."""
        return SharedTokens(self.teacher_ids.to(device), self.student_ids.to(device))


def shared_tokens(
    teacher_vocab: Mapping[str, int],
    student_vocab: Mapping[str, int],
    *,
    teacher_width: int,
    student_width: int,
) -> SharedTokens:
    """The token strings both vocabularies map to an id inside their model's output layer, by teacher id."""
    pairs = sorted(
        (teacher_id, student_vocab[token])
        for token, teacher_id in teacher_vocab.items()
        if token in student_vocab and teacher_id < teacher_width and student_vocab[token] < student_width
    )
    ids = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    return SharedTokens(teacher_ids=ids[:, 0].contiguous(), student_ids=ids[:, 1].contiguous())


def sorted_l1(p: Tensor, q: Tensor) -> Tensor:
    """sum_r |sort(p)_r - sort(q)_r| over the last axis, both sorted descending, the shorter padded with 0.

    For probability vectors this is the Wasserstein-1 distance ULD uses between two distributions whose
    outcomes cannot be matched: ranks stand in for tokens.
    """
    p_sorted = p.sort(dim=-1, descending=True).values
    q_sorted = q.sort(dim=-1, descending=True).values
    width = min(p.shape[-1], q.shape[-1])
    head = (p_sorted[..., :width] - q_sorted[..., :width]).abs().sum(dim=-1)
    # Past the shorter vocabulary the padded side is 0, so the difference is the longer side's mass there.
    return head + p_sorted[..., width:].sum(dim=-1) + q_sorted[..., width:].sum(dim=-1)


def _without(probabilities: Tensor, ids: Tensor) -> Tensor:
    keep = torch.ones(probabilities.shape[-1], dtype=torch.bool, device=probabilities.device)
    keep[ids] = False
    return probabilities[..., keep]


@outside_autocast
def uld_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float = 1.0,
    sorted_weight: float = 1.0,
    shared: SharedTokens | None = None,
) -> Tensor:
    """Mean over aligned positions of the Universal Logit Distillation loss (Boizard et al. 2024).

    student_logits [N, V_s] and teacher_logits [N, V_t] are N pairs of positions that predict the next
    token after the same text; p = softmax(logits / T) on each side.
    Without `shared`: sorted_weight * sum_r |sort(p_s)_r - sort(p_t)_r| (sorted descending, the shorter
    vocabulary padded with zeros): the Wasserstein-1 distance with ranks in place of tokens.
    With `shared` (the hybrid): sum_{(i, j) shared} |p_t[i] - p_s[j]| + sorted_weight * sorted_l1 of the
    probabilities of the tokens outside the shared set, so tokens both vocabularies hold are matched one
    to one and only the rest by rank. Identical vocabularies leave no rest: the hybrid is then the L1
    between the two distributions. No T^2 factor; the teacher side is detached; 0 when N = 0.
    """
    if student_logits.ndim != 2 or teacher_logits.ndim != 2:
        raise ValueError("uld_loss takes [N, V] logits of aligned positions")
    if student_logits.shape[0] != teacher_logits.shape[0]:
        raise ValueError(
            f"{student_logits.shape[0]} student positions against {teacher_logits.shape[0]} teacher positions"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape[0] == 0:
        return zero_loss(student_logits)
    dtype = compute_dtype(student_logits)
    p_student = F.softmax(student_logits.to(dtype) / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits.detach().to(dtype) / temperature, dim=-1)
    if shared is None:
        return sorted_weight * sorted_l1(p_student, p_teacher).mean()
    exact = (p_student[:, shared.student_ids] - p_teacher[:, shared.teacher_ids]).abs().sum(dim=-1)
    rest = sorted_l1(_without(p_student, shared.student_ids), _without(p_teacher, shared.teacher_ids))
    return (exact + sorted_weight * rest).mean()
