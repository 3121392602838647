"""Tiny models and datasets on disk, built offline, for running the engine end to end.

Fixtures:
- `engine_env` (session): an `EngineEnv` with a model root and data files. Models under `model_root`
  (each a `save_pretrained` directory with safetensors and tokenizer files):
    - `bert-sentiment`: a 4-layer BERT classifier (labels negative/positive) trained briefly on the
      sentiment data, eager attention so attention maps are available;
    - `bert-other-vocab`: the same architecture with a tokenizer whose vocabulary differs;
    - `gpt2-counting`: a 4-layer GPT-2 LM trained briefly on the counting data (EOS, no pad token).
- `bpe_models` (session): adds two GPT-2s whose byte-level BPE tokenizers differ (cross-tokenizer KD).
  Data files, by file id (see `FILES`): `file-sentiment` (JSONL, text/label, label set by a keyword),
  `file-sentiment-csv` (the same as latin-1 CSV), `file-three-labels` (labels a/b/c),
  `file-counting` (JSONL, text = runs of consecutive number words), `file-counting-prompts`
  (JSONL, prompt + text columns), `file-unlabeled` (JSONL, sentiment texts with no label column).
- `run_spec`: `run_spec(spec_dict, workdir, callbacks=None)` validates the dict as a `JobSpec` and
  runs it with `run_job` against `engine_env`.
- `fast_training`: small `training` settings to merge into a spec.
"""

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from bpe_models import bpe_gpt2, byte_bpe, fit, save_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from distillery.jobspec import JobSpec, ModelRef
from engine.callbacks import Callbacks
from engine.run import RunResult, run_job

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<eos>"]
FILLER = "the a movie film plot story actor scene music ending was is very quite really rather so".split()  # noqa: SIM905
POSITIVE, NEGATIVE = ["good", "great"], ["bad", "awful"]
NUMBERS = "zero one two three four five six seven eight nine".split()  # noqa: SIM905
VOCAB = SPECIAL + FILLER + POSITIVE + NEGATIVE + NUMBERS

FILES = {
    "file-sentiment": "sentiment.jsonl",
    "file-sentiment-csv": "sentiment.csv",
    "file-three-labels": "three_labels.jsonl",
    "file-counting": "counting.jsonl",
    "file-counting-prompts": "counting_prompts.jsonl",
    "file-unlabeled": "unlabeled.jsonl",
}


@dataclass
class EngineEnv:
    """Where the tiny models and data files live, and the resolvers `run_job` takes."""

    model_root: Path
    data_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def resolve_model(self, ref: ModelRef) -> Path:
        """A model path relative to the model root."""
        assert ref.path is not None
        return self.model_root / ref.path

    def resolve_file(self, file_id: str) -> Path:
        """A data file by its id."""
        return self.files[file_id]


def sentiment_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Filler words with one keyword that decides the label (positive/negative)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = rng.choices(FILLER, k=rng.randint(3, 8))
        label = rng.choice(["positive", "negative"])
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
        rows.append({"text": " ".join(words), "label": label})
    return rows


def counting_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Runs of consecutive number words, wrapping after nine: learnable next-token structure."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        start, length = rng.randrange(10), rng.randint(5, 10)
        rows.append({"text": " ".join(NUMBERS[(start + i) % 10] for i in range(length))})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def bert_tokenizer(vocab: list[str]) -> BertTokenizerFast:
    """A whole-word BERT tokenizer over `vocab`."""
    return BertTokenizerFast(vocab={word: index for index, word in enumerate(vocab)})


def word_tokenizer(vocab: list[str]) -> PreTrainedTokenizerFast:
    """A GPT-2-style whitespace word tokenizer with an EOS token and, like GPT-2, no pad token."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="[UNK]")


def tiny_bert_classifier(vocab_size: int, *, layers: int = 4, seed: int = 0) -> BertForSequenceClassification:
    """A 32-wide BERT classifier for negative/positive with eager attention."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    return BertForSequenceClassification._from_config(config, attn_implementation="eager")


def tiny_gpt2(vocab_size: int, eos_token_id: int, *, layers: int = 4, seed: int = 0) -> GPT2LMHeadModel:
    """A 32-wide GPT-2 language model."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=32,
        n_layer=layers,
        n_head=2,
        n_positions=64,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
    )
    return GPT2LMHeadModel._from_config(config, attn_implementation="eager")


def quick_fit(model: PreTrainedModel, batches: list[dict[str, torch.Tensor]], steps: int) -> None:
    """A few Adam steps so a teacher knows something worth distilling."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        loss = model(**batches[step % len(batches)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _classifier_batches(
    tokenizer: BertTokenizerFast, rows: list[dict[str, Any]]
) -> list[dict[str, torch.Tensor]]:
    batches = []
    for start in range(0, len(rows), 16):
        chunk = rows[start : start + 16]
        batch = dict(tokenizer([r["text"] for r in chunk], padding=True, return_tensors="pt"))
        batch["labels"] = torch.tensor([int(r["label"] == "positive") for r in chunk])
        batches.append(batch)
    return batches


def _lm_batches(
    tokenizer: PreTrainedTokenizerFast, rows: list[dict[str, Any]]
) -> list[dict[str, torch.Tensor]]:
    batches = []
    for start in range(0, len(rows), 16):
        texts = [r["text"] + " <eos>" for r in rows[start : start + 16]]
        batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        batches.append(batch)
    return batches


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> EngineEnv:
    """Tiny teachers and datasets written once per test session (see the module docstring)."""
    root = tmp_path_factory.mktemp("engine")
    env = EngineEnv(model_root=root / "models", data_dir=root / "data")
    env.data_dir.mkdir()
    sentiment = sentiment_rows(96, seed=1)
    counting = counting_rows(96, seed=2)
    env.files["file-sentiment"] = write_jsonl(env.data_dir / FILES["file-sentiment"], sentiment)
    csv_lines = ["text,label"] + [f"{row['text']} café,{row['label']}" for row in sentiment]
    env.files["file-sentiment-csv"] = env.data_dir / FILES["file-sentiment-csv"]
    env.files["file-sentiment-csv"].write_bytes(("\n".join(csv_lines) + "\n").encode("latin-1"))
    three = [{**row, "label": "abc"[i % 3]} for i, row in enumerate(sentiment)]
    env.files["file-three-labels"] = write_jsonl(env.data_dir / FILES["file-three-labels"], three)
    unlabeled = [{"text": row["text"]} for row in sentiment_rows(64, seed=4)]
    env.files["file-unlabeled"] = write_jsonl(env.data_dir / FILES["file-unlabeled"], unlabeled)
    env.files["file-counting"] = write_jsonl(env.data_dir / FILES["file-counting"], counting)
    prompts = [
        {"prompt": " ".join(r["text"].split()[:3]), "text": " ".join(r["text"].split()[3:])} for r in counting
    ]
    env.files["file-counting-prompts"] = write_jsonl(env.data_dir / FILES["file-counting-prompts"], prompts)

    bert_tok = bert_tokenizer(VOCAB)
    bert = tiny_bert_classifier(len(VOCAB))
    quick_fit(bert, _classifier_batches(bert_tok, sentiment), steps=30)
    bert.save_pretrained(env.model_root / "bert-sentiment")
    bert_tok.save_pretrained(env.model_root / "bert-sentiment")

    other_vocab = SPECIAL + sorted(FILLER + POSITIVE + NEGATIVE + NUMBERS) + ["extra"]
    other = tiny_bert_classifier(len(other_vocab), seed=3)
    other.save_pretrained(env.model_root / "bert-other-vocab")
    bert_tokenizer(other_vocab).save_pretrained(env.model_root / "bert-other-vocab")

    gpt_tok = word_tokenizer(VOCAB)
    gpt = tiny_gpt2(len(VOCAB), eos_token_id=VOCAB.index("<eos>"))
    gpt_tok.pad_token = "<eos>"
    quick_fit(gpt, _lm_batches(gpt_tok, counting), steps=30)
    gpt.save_pretrained(env.model_root / "gpt2-counting")
    word_tokenizer(VOCAB).save_pretrained(env.model_root / "gpt2-counting")
    return env


@pytest.fixture(scope="session")
def bpe_models(engine_env: EngineEnv) -> dict[str, Any]:
    """A teacher and a student whose byte-level BPE tokenizers, trained on the counting texts, differ.

    Under `engine_env.model_root`: `gpt2-bpe-teacher` (2 layers, whole number words as tokens, fitted
    briefly) and `gpt2-bpe-student` (1 layer, untrained, a smaller vocabulary that splits the words).
    Returns both tokenizers and the texts.
    """
    texts = [json.loads(line)["text"] for line in engine_env.files["file-counting"].read_text().splitlines()]
    teacher_tokenizer, student_tokenizer = byte_bpe(texts, 60), byte_bpe(texts, 36)
    teacher = bpe_gpt2(teacher_tokenizer, layers=2)
    fit(teacher, teacher_tokenizer, texts, steps=40)
    save_model(engine_env.model_root / "gpt2-bpe-teacher", teacher, teacher_tokenizer)
    save_model(
        engine_env.model_root / "gpt2-bpe-student", bpe_gpt2(student_tokenizer, layers=1), student_tokenizer
    )
    return {"teacher": teacher_tokenizer, "student": student_tokenizer, "texts": texts}


@pytest.fixture
def fast_training() -> dict[str, Any]:
    """Training settings that run in about a second on tiny models."""
    return {"epochs": 6, "batch_size": 16, "learning_rate": 3e-3, "warmup_ratio": 0.0, "seed": 0}


@pytest.fixture
def run_spec(engine_env: EngineEnv) -> Callable[..., RunResult]:
    """run_spec(spec_dict, workdir, callbacks=None): validate the dict as a JobSpec and run it."""

    def run(spec: dict[str, Any], workdir: Path, callbacks: Callbacks | None = None) -> RunResult:
        return run_job(
            JobSpec.model_validate(spec),
            workdir=workdir,
            resolve_model=engine_env.resolve_model,
            resolve_file=engine_env.resolve_file,
            callbacks=callbacks,
            device="cpu",
        )

    return run
