"""Tiny real models and datasets saved to disk, for tests that run whole jobs through the service."""

import json
import random
from pathlib import Path
from typing import Any

WORDS = ["good", "great", "love", "bad", "awful", "hate", "the", "movie", "was", "it", "really", "a", "day"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
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
