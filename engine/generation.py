"""Sampling a model's continuations of prompts: in eval and inference mode, with a KV cache."""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributed.fsdp import FSDPModule
from transformers import PreTrainedModel

from engine.batching import IGNORE_INDEX


@dataclass(frozen=True)
class Sampling:
    """How continuations are drawn: at most `max_new_tokens`, sampled at `temperature`, optionally top-p."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float | None = None


def batch_prompts(batch: dict[str, Tensor], prompt_tokens: int, eos_token_id: int | None) -> list[list[int]]:
    """Each row's prompt: its unlabelled prefix (a prompt column), else its first `prompt_tokens` tokens.

    A row without a prompt part keeps at least one token after the prompt (its final EOS does not count),
    so the prompt never swallows the whole text.
    """
    prompts = []
    for ids, labels, mask in zip(
        batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist(), strict=True
    ):
        length = sum(mask)
        ids, labels = ids[:length], labels[:length]
        masked = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), length)
        if masked > 0:
            prompts.append(ids[:masked])
            continue
        text = ids[:-1] if eos_token_id is not None and ids and ids[-1] == eos_token_id else ids
        prompts.append(ids[: max(1, min(prompt_tokens, len(text) - 1))])
    return prompts


def position_limit(*models: PreTrainedModel) -> int | None:
    """The fewest positions any of the models embeds, where their configs say."""
    limits = [getattr(model.config, "max_position_embeddings", None) for model in models]
    known = [int(limit) for limit in limits if isinstance(limit, int) and limit > 0]
    return min(known) if known else None


def sample_continuations(
    model: PreTrainedModel,
    prompts: list[list[int]],
    sampling: Sampling,
    *,
    pad_token_id: int,
    eos_token_id: int | None,
) -> list[list[int]]:
    """The model's sampled continuation of each prompt, cut after its first EOS.

    The model generates in eval mode (no dropout) under inference mode with its KV cache, and is put
    back in the mode it was in. Prompts are left-padded so each ends where generation starts.
    """
    device = next(model.parameters()).device
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.tensor([[pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    options = {"top_p": sampling.top_p} if sampling.top_p is not None else {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            generated = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=sampling.max_new_tokens,
                do_sample=True,
                temperature=sampling.temperature,
                top_k=0,  # no top-k cut: sample the whole tempered distribution, as GKD does
                use_cache=True,
                pad_token_id=pad_token_id,
                eos_token_id=eos_token_id,
                # FSDP shards' forwards are collectives: ranks that finish early keep stepping with the rest.
                synced_gpus=isinstance(model, FSDPModule),
                **options,
            )
    finally:
        model.train(was_training)
    continuations = []
    for row in generated[:, width:].tolist():
        if eos_token_id is not None and eos_token_id in row:
            row = row[: row.index(eos_token_id) + 1]
        continuations.append(row)
    return continuations
