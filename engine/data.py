"""Training data: read the uploaded files, settle the label set, tokenize, and batch by length."""

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from distillery.jobspec import DataSpec
from distillery.jobspec.data_format import ResolvedFormat
from engine.batching import IGNORE_INDEX
from engine.errors import UserError
from engine.lm.data import check_rows, ensure_chat_template, resolve_format, tokenize_causal_lm

logger = logging.getLogger(__name__)

GENERIC_LABEL = re.compile(r"LABEL_\d+")


@dataclass
class PreparedData:
    """Tokenized train, eval and optional test sets (columns input_ids, attention_mask, [token_type_ids],
    labels, length); for a causal LM, its data format and how many examples each split cut or dropped."""

    train: datasets.Dataset
    eval: datasets.Dataset
    label2id: dict[str, int] | None
    pad_token_id: int
    test: datasets.Dataset | None = None
    lm_format: ResolvedFormat | None = None
    chat_template: str | None = None
    cut: dict[str, dict[str, int]] = field(default_factory=dict)

    def lm_summary(self) -> dict[str, Any] | None:
        """The causal-LM data as the report gives it: format, chat template and cut examples per split."""
        if self.lm_format is None:
            return None
        return {"format": self.lm_format, "chat_template": self.chat_template, "examples": self.cut}

    def lm_messages(self, max_length: int) -> list[str]:
        """Lines for the job's log: the causal-LM format, its chat template, and the examples cut."""
        if self.lm_format is None:
            return []
        lines = [f"data format: {self.lm_format}"]
        if self.chat_template == "default":
            lines[0] += (
                "; the student's tokenizer has no chat template, so a default one ('role: content' turns "
                "ended by EOS) renders the chats and is saved with the student"
            )
        elif self.chat_template == "tokenizer":
            lines[0] += ", rendered with the student's chat template"
        for split, counts in self.cut.items():
            if counts["truncated"] or counts["dropped"]:
                lines.append(
                    f"{split}: {counts['truncated']} of {counts['examples']} examples truncated to "
                    f"max_length {max_length} (the trained tokens kept whole where they fit), "
                    f"{counts['dropped']} dropped with no trained token left"
                )
        return lines


def read_table(path: Path, *, cache_dir: Path) -> datasets.Dataset:
    """A JSONL, CSV or Parquet file as a Dataset; CSV is read as UTF-8, then as latin-1."""
    kinds = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
    kind = kinds.get(path.suffix.lower())
    if kind is None:
        raise UserError(
            f"unsupported data file type {path.suffix!r}; use .jsonl, .ndjson, .csv or .parquet",
            code="invalid_data",
            param="data.train_file",
        )
    load = dict(data_files=str(path), split="train", cache_dir=str(cache_dir))
    if kind != "csv":
        return datasets.load_dataset(kind, **load)
    try:
        return datasets.load_dataset("csv", encoding="utf-8", **load)
    except Exception as error:  # the builder wraps the UnicodeDecodeError in its own error type
        if not _caused_by_decoding(error):
            raise
        logger.info("%s is not UTF-8; reading it as latin-1", path.name)
        return datasets.load_dataset("csv", encoding="latin-1", **load)


def _caused_by_decoding(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, UnicodeDecodeError):
            return True
        error = error.__cause__ or error.__context__
    return False


def check_columns(
    table: datasets.Dataset,
    spec: DataSpec,
    task: str,
    *,
    file_param: str,
    lm_format: ResolvedFormat | None = None,
) -> None:
    """Raise a UserError naming the spec field of any column the file lacks.

    A causal LM's columns are those of `lm_format` (default: the format the spec and the file give).
    """
    if task == "causal_lm":
        lm_format = lm_format or resolve_format(spec, table.column_names)
        wanted = spec.lm_columns(lm_format)
    else:
        wanted = {"data.text_column": spec.text_column, "data.label_column": spec.label_column}
        if spec.text_pair_column:
            wanted["data.text_pair_column"] = spec.text_pair_column
    for param, column in wanted.items():
        if column not in table.column_names:
            raise UserError(
                f"column {column!r} is not in the {file_param.split('.')[-1]} "
                f"(columns: {', '.join(table.column_names)})",
                code="invalid_data",
                param=param,
            )


def check_data(
    table: datasets.Dataset, spec: DataSpec, task: str, *, file_param: str, lm_format: ResolvedFormat | None
) -> None:
    """The file's columns, and for a causal LM the chats or pairs of each row."""
    check_columns(table, spec, task, file_param=file_param, lm_format=lm_format)
    if lm_format is not None:
        check_rows(table, spec, lm_format, file_param=file_param)


def split_train_eval(
    spec: DataSpec, task: str, *, seed: int, resolve_file: Callable[[str], Path], cache_dir: Path
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The raw train and eval tables: the eval file, or a seeded split of `eval_fraction` of train."""
    train = read_table(resolve_file(spec.train_file), cache_dir=cache_dir)
    lm_format = resolve_format(spec, train.column_names) if task == "causal_lm" else None
    check_data(train, spec, task, file_param="data.train_file", lm_format=lm_format)
    if spec.eval_file:
        evaluation = read_table(resolve_file(spec.eval_file), cache_dir=cache_dir)
        check_data(evaluation, spec, task, file_param="data.eval_file", lm_format=lm_format)
    else:
        if len(train) < 2:
            raise UserError(
                "the train file needs at least 2 rows to split off an eval set",
                code="invalid_data",
                param="data.eval_fraction",
            )
        parts = train.train_test_split(test_size=spec.eval_fraction, seed=seed, shuffle=True)
        train, evaluation = parts["train"], parts["test"]
    if spec.max_train_samples is not None:
        train = train.select(range(min(spec.max_train_samples, len(train))))
    if spec.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(spec.max_eval_samples, len(evaluation))))
    return train, evaluation


def has_real_label_names(id2label: dict[int, str] | None) -> bool:
    """Whether a config names its labels, rather than the default LABEL_0, LABEL_1, ..."""
    if not id2label:
        return False
    return not all(GENERIC_LABEL.fullmatch(str(name)) for name in id2label.values())


def _normalise_label(value: Any, param: str) -> int | str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise UserError("a row has no label", code="invalid_data", param=param)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | str):
        return value
    return str(value)


def resolve_label2id(values: Sequence[Any], teacher_id2label: dict[int, str] | None) -> dict[str, int]:
    """The label set of the train data, in the teacher's order when the teacher names its labels.

    Without named teacher labels the labels are sorted (numbers numerically). Integer labels that all
    fall inside a named teacher's range are taken as the teacher's ids (e.g. 0/1 against negative/positive).
    """
    labels = sorted({_normalise_label(value, "data.label_column") for value in values}, key=_label_sort_key)
    names = [str(label) for label in labels]
    if teacher_id2label and has_real_label_names(teacher_id2label):
        teacher_label2id = {str(name): int(index) for index, name in teacher_id2label.items()}
        if set(names) <= set(teacher_label2id):
            return teacher_label2id
        if all(isinstance(label, int) and 0 <= label < len(teacher_label2id) for label in labels):
            return teacher_label2id
    return {name: index for index, name in enumerate(names)}


def _label_sort_key(label: int | str) -> tuple[int, int | str]:
    return (0, label) if isinstance(label, int) else (1, label)


def encode_labels(values: Sequence[Any], label2id: dict[str, int], *, param: str) -> list[int]:
    """Label ids of the values; integer values a named mapping lacks are read as ids already."""
    ids = []
    for value in values:
        label = _normalise_label(value, param)
        if str(label) in label2id:
            ids.append(label2id[str(label)])
        elif isinstance(label, int) and 0 <= label < len(label2id):
            ids.append(label)
        else:
            raise UserError(
                f"label {label!r} is not among the train labels {sorted(label2id)}",
                code="invalid_data",
                param=param,
            )
    return ids


def tokenize_classification(
    table: datasets.Dataset,
    spec: DataSpec,
    tokenizer: PreTrainedTokenizerBase,
    label2id: dict[str, int] | None,
) -> datasets.Dataset:
    """input_ids, attention_mask, [token_type_ids], labels (class ids) and length of each row.

    Without a label set (a transfer set) every label is IGNORE_INDEX, so only the teacher teaches there.
    """

    def encode(rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
        texts = [str(text) if text is not None else "" for text in rows[spec.text_column]]
        pairs = None
        if spec.text_pair_column:
            pairs = [str(text) if text is not None else "" for text in rows[spec.text_pair_column]]
        encoded = dict(tokenizer(texts, pairs, truncation=True, max_length=spec.max_length))
        if label2id is None:
            encoded["labels"] = [IGNORE_INDEX] * len(texts)
        else:
            encoded["labels"] = encode_labels(rows[spec.label_column], label2id, param="data.label_column")
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    return table.map(encode, batched=True, remove_columns=table.column_names, desc="tokenize")


def prepare_data(
    spec: DataSpec,
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
    resolve_file: Callable[[str], Path],
    cache_dir: Path,
    teacher_id2label: dict[int, str] | None = None,
) -> PreparedData:
    """Read, split and tokenize the job's data with the student's tokenizer."""
    train, evaluation = split_train_eval(
        spec, task, seed=seed, resolve_file=resolve_file, cache_dir=cache_dir
    )
    tables = {"train": train, "eval": evaluation}
    lm_format = resolve_format(spec, train.column_names) if task == "causal_lm" else None
    if spec.test_file:
        tables["test"] = read_table(resolve_file(spec.test_file), cache_dir=cache_dir)
        check_data(tables["test"], spec, task, file_param="data.test_file", lm_format=lm_format)
    label2id = None
    chat_template = None
    cut: dict[str, dict[str, int]] = {}
    if lm_format is None:
        label2id = resolve_label2id(train[spec.label_column], teacher_id2label)
        tables = {name: tokenize_classification(t, spec, tokenizer, label2id) for name, t in tables.items()}
    else:
        if lm_format == "chat":
            chat_template = "default" if ensure_chat_template(tokenizer) else "tokenizer"
        for name, table in tables.items():
            tables[name], cut[name] = tokenize_causal_lm(table, spec, tokenizer, lm_format)
    if spec.transfer_file:
        tables["train"] = add_transfer_set(
            tables["train"], spec, tokenizer, resolve_file=resolve_file, cache_dir=cache_dir
        )
    if len(tables["train"]) == 0 or len(tables["eval"]) == 0:
        raise UserError(
            "no usable examples left in the train or eval set", code="invalid_data", param="data.train_file"
        )
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        raise UserError("the student's tokenizer has neither a pad nor an EOS token", param="student.model")
    return PreparedData(
        train=tables["train"],
        eval=tables["eval"],
        label2id=label2id,
        pad_token_id=pad_token_id,
        test=tables.get("test"),
        lm_format=lm_format,
        chat_template=chat_template,
        cut=cut,
    )


def add_transfer_set(
    train: datasets.Dataset,
    spec: DataSpec,
    tokenizer: PreTrainedTokenizerBase,
    *,
    resolve_file: Callable[[str], Path],
    cache_dir: Path,
) -> datasets.Dataset:
    """Train rows followed by the transfer file's unlabeled texts, which only the teacher's outputs teach."""
    assert spec.transfer_file is not None
    table = read_table(resolve_file(spec.transfer_file), cache_dir=cache_dir)
    for param, column in (
        ("data.text_column", spec.text_column),
        ("data.text_pair_column", spec.text_pair_column),
    ):
        if column and column not in table.column_names:
            raise UserError(
                f"column {column!r} is not in the transfer file (columns: {', '.join(table.column_names)})",
                code="invalid_data",
                param=param,
            )
    if spec.max_transfer_samples is not None:
        table = table.select(range(min(spec.max_transfer_samples, len(table))))
    transfer = tokenize_classification(table, spec, tokenizer, None).cast(train.features)
    logger.info("transfer set: %d unlabeled rows beside %d labeled", len(transfer), len(train))
    return datasets.concatenate_datasets([train, transfer])


def causal_lm_prompts(
    dataset: datasets.Dataset, prompt_tokens: int, eos_token_id: int | None
) -> list[list[int]]:
    """Prompts for sequence-level KD: each example's masked prompt, else its first `prompt_tokens` tokens."""
    prompts = []
    for ids, labels in zip(dataset["input_ids"], dataset["labels"], strict=True):
        masked = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
        if masked > 0:
            prompts.append(list(ids[:masked]))
            continue
        text = list(ids[:-1]) if eos_token_id is not None and ids and ids[-1] == eos_token_id else list(ids)
        prompts.append(text[:prompt_tokens] or list(ids[:1]))
    return prompts


def add_generated_examples(
    train: datasets.Dataset, prompts: list[list[int]], continuations: list[list[int]]
) -> datasets.Dataset:
    """The train set plus prompt + continuation examples whose loss covers the continuation only."""
    rows: dict[str, list[Any]] = {"input_ids": [], "attention_mask": [], "labels": [], "length": []}
    for prompt, continuation in zip(prompts, continuations, strict=True):
        if not continuation:
            continue
        ids = prompt + continuation
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * len(ids))
        rows["labels"].append([IGNORE_INDEX] * len(prompt) + continuation)
        rows["length"].append(len(ids))
    if not rows["input_ids"]:
        return train
    generated = datasets.Dataset.from_dict(rows, features=train.features)
    return datasets.concatenate_datasets([train, generated])
