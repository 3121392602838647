"""Base models for the causal-LM benchmarks: BPE tokenizers trained on the data, GPT-2 configs sized to them.

Two kinds of BPE: byte-level (GPT-2's) and over Metaspace pieces ("▁word", as Llama-2 and T5 tokenize),
so that two models can be given vocabularies in which no word-initial token is spelt alike.
"""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PIECES_EOS, UNK = "</s>", "<unk>"


def install_base_model(train_file: Path, target: Path, *, vocab_size: int, layers: int, width: int) -> None:
    """A BPE tokenizer trained on the train texts and a GPT-2 config sized to it, as a model directory."""
    texts = [json.loads(line)["text"] for line in train_file.read_text(encoding="utf-8").splitlines()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)
    save_gpt2_base(tokenizer, target, eos=EOS, layers=layers, width=width)


def install_metaspace_base(
    train_file: Path,
    target: Path,
    *,
    vocab_size: int,
    layers: int,
    width: int,
    eos: str = PIECES_EOS,
    prepend_scheme: str = "always",
) -> None:
    """A Metaspace BPE tokenizer trained on the train texts and a GPT-2 config sized to it.

    prepend_scheme "always" puts a "▁" before every text (as Llama-2's SentencePiece); "never" keeps
    the text as written, so a text tokenized in two pieces decodes back to the same characters.
    """
    texts = [json.loads(line)["text"] for line in train_file.read_text(encoding="utf-8").splitlines()]
    bpe = Tokenizer(models.BPE(unk_token=UNK))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=prepend_scheme)
    bpe.decoder = decoders.Metaspace(prepend_scheme=prepend_scheme)
    alphabet = sorted({char for text in texts for char in text})
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK, eos], initial_alphabet=alphabet),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos, unk_token=UNK)
    save_gpt2_base(tokenizer, target, eos=eos, layers=layers, width=width)


def save_gpt2_base(
    tokenizer: PreTrainedTokenizerFast, target: Path, *, eos: str, layers: int, width: int
) -> None:
    """Save the tokenizer beside a GPT-2 config sized to it, its end-of-text token as BOS and EOS."""
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=width,
        n_layer=layers,
        n_head=max(1, width // 64),
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        architectures=["GPT2LMHeadModel"],
    )
    target.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(target)
    tokenizer.save_pretrained(target)
