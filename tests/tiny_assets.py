"""Tiny real models and datasets saved to disk, for tests that run whole jobs through the service."""

import json
import random
from pathlib import Path
from typing import Any

WORDS = ["good", "great", "love", "bad", "awful", "hate", "the", "movie", "was", "it", "really", "a", "day"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NUMBER_WORDS = "zero one two three four five six seven eight nine".split()  # noqa: SIM905
LABELS = {"positive": ["good", "great", "love"], "negative": ["bad", "awful", "hate"]}


def save_tiny_bert_classifier(directory: Path, *, layers: int = 2, seed: int = 0) -> Path:
    """A BERT sentiment classifier with a word-level tokenizer, saved with save_pretrained (safetensors)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def sentiment_rows(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Short texts whose label is given by one sentiment word, so a tiny model can learn them."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(sorted(LABELS))
        filler = rng.sample(["the", "movie", "was", "it", "really", "a", "day"], 3)
        words = [*filler, rng.choice(LABELS[label])]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows as JSON Lines."""
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def save_tiny_gpt2(directory: Path, *, layers: int = 2, seed: int = 0) -> Path:
    """A GPT-2 LM over a whitespace word tokenizer with an EOS token, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["<eos>", "[UNK]", *NUMBER_WORDS, *WORDS]
    word_level = Tokenizer(models.WordLevel({word: i for i, word in enumerate(vocab)}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, eos_token="<eos>", unk_token="[UNK]")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=layers, n_head=2, n_positions=64)
    config.bos_token_id = config.eos_token_id = 0
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def counting_chats(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """OpenAI-format chats: the user names a number word, the assistant counts on from it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        start, length = rng.randrange(10), rng.randint(3, 6)
        answer = " ".join(NUMBER_WORDS[(start + i) % 10] for i in range(length))
        question = {"role": "user", "content": NUMBER_WORDS[start]}
        rows.append({"messages": [question, {"role": "assistant", "content": answer}]})
    return rows


def counting_rows(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Runs of consecutive number words split into a prompt and its continuation."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        start, length = rng.randrange(10), rng.randint(6, 10)
        words = [NUMBER_WORDS[(start + i) % 10] for i in range(length)]
        rows.append({"prompt": " ".join(words[:3]), "text": " ".join(words[3:])})
    return rows
