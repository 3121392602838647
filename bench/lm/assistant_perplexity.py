"""The one score of the LM peer benchmark: a student's perplexity on held-out assistant tokens.

Each chat is rendered with the tokenizer's template; the tokens after the generation prompt (the
assistant's answer and its end-of-turn token) are scored, every other token is context only.
"""

import json
import math
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

IGNORE = -100


def read_chats(path: Path, limit: int | None = None) -> list[list[dict[str, str]]]:
    """The `messages` of each line of a chat JSONL file (the first `limit`)."""
    lines = path.read_text(encoding="utf-8").splitlines()[:limit]
    return [json.loads(line)["messages"] for line in lines]


def tokenize_chat(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> tuple[list[int], int]:
    """The chat's token ids and how many of them are the prompt (everything before the last answer)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return ids, len(prompt_ids)


def chat_tokens(tokenizer: PreTrainedTokenizerBase, chats: list[list[dict[str, str]]]) -> int:
    """Real (unpadded) tokens of the chats: what one epoch over them feeds a model."""
    return sum(len(tokenize_chat(tokenizer, messages)[0]) for messages in chats)


@torch.inference_mode()
def assistant_perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chats: list[list[dict[str, str]]],
    *,
    batch_size: int = 32,
) -> dict[str, Any]:
    """exp(mean negative log-likelihood of the assistant tokens), in float32, right-padded batches."""
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total, count = 0.0, 0
    rows = [tokenize_chat(tokenizer, messages) for messages in chats]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        for row, (ids, prompt) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            labels[row, prompt : len(ids)] = torch.tensor(ids[prompt:])
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        targets = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
        )
        total += float(losses)
        count += int((targets != IGNORE).sum())
    return {"perplexity": math.exp(total / count), "tokens": count, "chats": len(chats)}
