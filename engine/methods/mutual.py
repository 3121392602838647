"""Deep mutual learning (Zhang et al. 2018): peers trained together, each taught by the others."""

import logging

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from distillery.jobspec.methods import MutualMethod
from engine.batching import IGNORE_INDEX
from engine.losses import hard_target_loss, soft_target_loss
from engine.methods.base import Method, MethodContext, model_inputs, next_token_view
from engine.methods.registry import implements

logger = logging.getLogger(__name__)

# Attribute names of the classification head in Hugging Face *ForSequenceClassification models.
HEAD_NAMES = ("classifier", "score")


def peer_seed(base_seed: int, peer_index: int) -> int:
    """A seed for an extra peer, distinct per peer and derived from the run's seed so runs repeat."""
    return (base_seed + peer_index) % 2**32


def reinitialize_head(model: PreTrainedModel, seed: int) -> bool:
    """Draw the classification head's linear layers afresh from `seed`; False when no head is found."""
    head = next(
        (getattr(model, name) for name in HEAD_NAMES if isinstance(getattr(model, name, None), nn.Module)),
        None,
    )
    if head is None:
        return False
    generator = torch.Generator().manual_seed(seed)
    std = float(getattr(model.config, "initializer_range", 0.02))
    with torch.no_grad():
        for layer in head.modules():
            if isinstance(layer, nn.Linear):
                # Drawn on the CPU so the values do not depend on the device; then copied in place.
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                if layer.bias is not None:
                    layer.bias.zero_()
    return True


@implements(MutualMethod)
class MutualDistillation(Method):
    """Each peer: CE + kl_weight * mean over the other peers of T^2 KL(other || peer), others detached."""

    def __init__(self, spec: MutualMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: MutualMethod = spec
        device = next(self.student.parameters()).device
        base_seed = torch.initial_seed()
        extra_peers = []
        # Building a peer must not move the global random state, so data order matches other methods'.
        cuda_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):
            for peer_index in range(1, spec.num_peers):
                seed = peer_seed(base_seed, peer_index)
                peer = ctx.new_student(seed).to(device)
                if ctx.task == "sequence_classification" and not reinitialize_head(peer, seed):
                    logger.warning("peer %d: no classification head found to re-initialise", peer_index)
                extra_peers.append(peer)
        self.peers = nn.ModuleList(extra_peers)
        logger.info("mutual learning with %d peers", spec.num_peers)

    def all_peers(self) -> list[PreTrainedModel]:
        """The student (peer 0, the one exported) followed by the extra peers."""
        return [self.student, *self.peers]

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Sum over peers of CE + kl_weight * mean KL to each other peer's detached predictions."""
        inputs = model_inputs(batch)
        logits = [peer(**inputs).logits for peer in self.all_peers()]
        labels, mask = batch["labels"], None
        if self.task == "causal_lm":
            # Position t predicts token t + 1; IGNORE_INDEX marks padding and prompt tokens.
            shifted = [next_token_view(peer_logits, labels) for peer_logits in logits]
            logits, labels = [view[0] for view in shifted], shifted[0][1]
            mask = labels != IGNORE_INDEX
        ces, kls = [], []
        for index, peer_logits in enumerate(logits):
            ces.append(hard_target_loss(peer_logits, labels))
            to_others = [
                soft_target_loss(peer_logits, other.detach(), temperature=self.spec.temperature, mask=mask)
                for other_index, other in enumerate(logits)
                if other_index != index
            ]
            kls.append(torch.stack(to_others).mean())
        ce, kl = torch.stack(ces), torch.stack(kls)
        loss = (ce + self.spec.kl_weight * kl).sum()
        terms = {"loss": loss.item(), "ce": ce.mean().item(), "kl": kl.mean().item()}
        terms.update({f"ce_peer_{index}": value.item() for index, value in enumerate(ces)})
        return loss, terms
