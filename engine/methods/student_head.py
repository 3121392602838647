"""A causal-LM student's last hidden state and output layer, for the fused head loss.

The fused loss (engine/losses/fused_head.py) computes the logits itself, a chunk at a time, so the
student's forward keeps them for its last position only (`logits_to_keep=1`) and hands back its hidden
states. It goes through the student's own forward, so a compiled forward, peft's adapters and hooks on
the model all still apply.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule
from transformers import PreTrainedModel


def plain_output_layer(student: PreTrainedModel) -> bool:
    """Whether the student's logits are exactly its output layer, a plain nn.Linear, on its last hidden state.

    Checked by running it once on two tokens in eval mode: a model that scales or caps its logits after
    that layer, an adapted output layer (LoRA on lm_head) or a forward without `logits_to_keep` keeps the
    logits path.
    """
    head = student.get_output_embeddings()
    if type(head) is not nn.Linear:
        return False
    was_training = student.training
    student.eval()
    try:
        with torch.no_grad():
            tokens = torch.tensor([[0, 1]], device=head.weight.device)
            mask = torch.ones_like(tokens)
            outputs = student(
                input_ids=tokens, attention_mask=mask, logits_to_keep=1, output_hidden_states=True
            )
    except TypeError:  # a forward that takes no logits_to_keep
        return False
    finally:
        student.train(was_training)
    if outputs.logits.shape[1] != 1 or not outputs.hidden_states:
        return False
    expected = F.linear(outputs.hidden_states[-1][:, -1:], head.weight, head.bias)
    return bool(torch.allclose(outputs.logits, expected, rtol=1e-4, atol=1e-5))


def fused_head_usable(student: PreTrainedModel, enabled: bool) -> bool:
    """Whether this forward can feed the fused loss: enabled, and the student's root not sharded by FSDP.

    FSDP2 gathers the root's weights (the output layer's among them) only inside its forward.
    """
    return enabled and not isinstance(student, FSDPModule)


def last_hidden_state(student: PreTrainedModel, inputs: dict[str, Tensor]) -> Tensor:
    """The student's last hidden state [B, T, H], the input of its output layer; no logits beyond the last."""
    outputs = student(**inputs, logits_to_keep=1, output_hidden_states=True)
    hidden: Tensor = outputs.hidden_states[-1]
    return hidden


def output_layer(student: PreTrainedModel) -> tuple[Tensor, Tensor | None]:
    """The weight [V, H] and bias [V] (or None) of the student's output layer."""
    head = student.get_output_embeddings()
    assert isinstance(head, nn.Linear)
    return head.weight, head.bias
