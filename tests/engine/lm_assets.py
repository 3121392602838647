"""Tiny causal LMs of several families over one byte-level BPE tokenizer, and chat data to train them on."""

import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

NUMBERS = "zero one two three four five six seven eight nine".split()  # noqa: SIM905
EOS, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Qwen's ChatML, as its tokenizers carry it.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The architectures each family's tiny config uses: 32 wide, 2 heads (1 key/value head where grouped).
FAMILIES: dict[str, dict[str, Any]] = {
    "gpt2": {"n_embd": 32, "n_head": 2, "n_positions": 128},
    "llama": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1},
    "qwen2": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1},
    "qwen3": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
    },
    "mistral": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
    "phi": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2},
    "phi3": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1},
}


def counting_chats(count: int, *, seed: int) -> list[dict[str, Any]]:
    """Chats where the user names a number and the assistant counts on from it, some with a system turn."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        start, length = rng.randrange(10), rng.randint(3, 6)
        messages = [{"role": "system", "content": "you count"}] if rng.random() < 0.5 else []
        messages += [
            {"role": "user", "content": f"count from {NUMBERS[start]}"},
            {"role": "assistant", "content": " ".join(NUMBERS[(start + i) % 10] for i in range(length))},
        ]
        rows.append({"messages": messages})
    return rows


def bpe_tokenizer(
    texts: list[str], *, vocab_size: int = 320, chat_template: str | None = None
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the texts, GPT-2 style (EOS, no pad token)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)
    tokenizer.chat_template = chat_template
    return tokenizer


def chat_texts(rows: list[dict[str, Any]]) -> list[str]:
    """Every role and content of the chats, to train a tokenizer on."""
    return [f"{m['role']}: {m['content']}" for row in rows for m in row["messages"]]


def tiny_lm(
    family: str, tokenizer: PreTrainedTokenizerFast, *, layers: int = 2, seed: int = 0
) -> PreTrainedModel:
    """A tiny causal LM of the family over the tokenizer's vocabulary."""
    eos = tokenizer.eos_token_id
    depth = (
        {"n_layer": layers}
        if family == "gpt2"
        else {"num_hidden_layers": layers, "max_position_embeddings": 128}
    )
    config = AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        **FAMILIES[family],
        **depth,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def save_tiny_lm(
    family: str, directory: Path, tokenizer: PreTrainedTokenizerFast, *, layers: int = 2, seed: int = 0
) -> Path:
    """A tiny causal LM saved with its tokenizer in `save_pretrained` form (safetensors)."""
    tiny_lm(family, tokenizer, layers=layers, seed=seed).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
