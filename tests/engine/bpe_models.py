"""Byte-level BPE tokenizers of different sizes trained offline on small texts, and tiny GPT-2s over them."""

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<eos>"


def byte_bpe(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained on `texts`, with an EOS token and no pad token."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS]))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS)


def bpe_gpt2(tokenizer: PreTrainedTokenizerFast, *, layers: int, seed: int = 0) -> GPT2LMHeadModel:
    """A 32-wide GPT-2 over the tokenizer's vocabulary, dropout off."""
    torch.manual_seed(seed)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=layers,
        n_head=2,
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    return GPT2LMHeadModel(config)


def fit(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], steps: int) -> None:
    """A few Adam steps on the texts, each ending with EOS, so the model knows something to teach."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    encoded = [tokenizer(text)["input_ids"] + [eos] for text in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        chunk = [encoded[(step * 16 + i) % len(encoded)] for i in range(16)]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.tensor([ids + [eos] * (width - len(ids)) for ids in chunk])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in chunk])
        loss = model(
            input_ids=input_ids, attention_mask=mask, labels=input_ids.masked_fill(mask == 0, -100)
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def save_model(directory: Path, model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast) -> Path:
    """The model and its tokenizer in `save_pretrained` form."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
