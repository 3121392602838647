"""Data: reading files, the label set, causal-LM label masking, and seeded length-grouped batches."""

import datasets
import pytest

from distillery.jobspec import DataSpec
from engine.batching import (
    EXAMPLE_INDEX,
    IGNORE_INDEX,
    collate,
    epoch_batch_order,
    eval_batch_order,
    eval_batch_size,
    iterate_batches,
    longest_batch,
)
from engine.data import (
    add_generated_examples,
    causal_lm_prompts,
    check_columns,
    prepare_data,
    read_table,
    resolve_label2id,
)
from engine.errors import UserError
from engine.lm.data import tokenize_causal_lm
from engine.models import load_tokenizer


def test_a_latin1_csv_is_read(engine_env, tmp_path):
    table = read_table(engine_env.files["file-sentiment-csv"], cache_dir=tmp_path)
    assert len(table) == 96
    assert table[0]["text"].endswith("café")


def test_every_extension_the_api_accepts_is_read(tmp_path):
    from app.files.validation import FORMAT_BY_EXTENSION

    rows = '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n'
    for extension, format_name in FORMAT_BY_EXTENSION.items():
        path = tmp_path / f"data{extension}"
        if format_name == "parquet":
            datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}).to_parquet(str(path))
        elif format_name == "csv":
            path.write_text("text,label\na,0\nb,1\n")
        else:
            path.write_text(rows)
        assert read_table(path, cache_dir=tmp_path / "cache")["text"] == ["a", "b"], extension


def test_a_missing_label_column_names_the_field():
    table = datasets.Dataset.from_dict({"text": ["a"], "target": [1]})
    with pytest.raises(UserError) as caught:
        check_columns(
            table, DataSpec(train_file="f"), "sequence_classification", file_param="data.train_file"
        )
    assert caught.value.param == "data.label_column"


def test_labels_are_sorted_unless_the_teacher_names_them():
    assert resolve_label2id(["pos", "neg", "pos"], None) == {"neg": 0, "pos": 1}
    assert resolve_label2id([10, 2, 2], None) == {"2": 0, "10": 1}  # numbers sort as numbers
    assert resolve_label2id(["pos", "neg"], {0: "LABEL_0", 1: "LABEL_1"}) == {"neg": 0, "pos": 1}
    assert resolve_label2id(["pos", "neg"], {0: "pos", 1: "neg"}) == {"pos": 0, "neg": 1}
    # Integer labels inside a named teacher's range are its ids (e.g. SST-2's 0/1).
    assert resolve_label2id([0, 1], {0: "negative", 1: "positive"}) == {"negative": 0, "positive": 1}


def test_causal_lm_labels_mask_the_prompt_and_end_with_eos(engine_env):
    tokenizer = load_tokenizer(engine_env.model_root / "gpt2-counting")
    table = datasets.Dataset.from_dict({"prompt": ["one two"], "text": ["three four"]})
    spec = DataSpec(train_file="f", prompt_column="prompt", max_length=16)
    row = tokenize_causal_lm(table, spec, tokenizer)[0][0]
    eos = tokenizer.eos_token_id
    assert row["input_ids"] == tokenizer("one two three four")["input_ids"] + [eos]
    assert row["labels"] == [IGNORE_INDEX, IGNORE_INDEX, *row["input_ids"][2:]]


def test_collate_pads_to_the_longest_and_ignores_padding_in_lm_labels():
    rows = {"input_ids": [[5, 6, 7], [8]], "attention_mask": [[1, 1, 1], [1]], "labels": [[5, 6, 7], [8]]}
    batch = collate(rows, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    classes = collate(
        {"input_ids": [[1], [2, 3]], "attention_mask": [[1], [1, 1]], "labels": [1, 0]}, pad_token_id=0
    )
    assert classes["labels"].tolist() == [1, 0]


def test_batch_order_is_seeded_complete_and_grouped_by_length():
    lengths = [(i * 37) % 50 + 1 for i in range(200)]
    order = epoch_batch_order(lengths, 8, seed=3, epoch=0, group_by_length=True)
    assert order == epoch_batch_order(lengths, 8, seed=3, epoch=0, group_by_length=True)
    assert order != epoch_batch_order(lengths, 8, seed=3, epoch=1, group_by_length=True)
    assert sorted(i for batch in order for i in batch) == list(range(200))
    random_order = epoch_batch_order(lengths, 8, seed=3, epoch=0, group_by_length=False)

    def padded_tokens(batches):
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)

    assert padded_tokens(order) < padded_tokens(random_order)
    assert sorted(i for batch in eval_batch_order(lengths, 16) for i in batch) == list(range(200))


@pytest.mark.parametrize(
    ("task", "batch_size", "asked", "expected"),
    [
        ("sequence_classification", 32, None, 128),
        ("sequence_classification", 8, None, 32),
        ("sequence_classification", 256, None, 256),
        ("sequence_classification", 32, 16, 16),
        ("causal_lm", 32, None, 32),
        ("causal_lm", 32, 64, 64),
    ],
)
def test_classifiers_evaluate_in_larger_batches_unless_the_spec_says(task, batch_size, asked, expected):
    assert eval_batch_size(task, batch_size=batch_size, eval_batch_size=asked) == expected


def test_sequence_level_prompts_and_generated_examples():
    table = datasets.Dataset.from_dict(
        {
            "input_ids": [[1, 2, 3, 4, 9], [5, 6, 7]],
            "attention_mask": [[1] * 5, [1] * 3],
            "labels": [[1, 2, 3, 4, 9], [IGNORE_INDEX, 6, 7]],
            "length": [5, 3],
        }
    )
    prompts = causal_lm_prompts(table, prompt_tokens=2, eos_token_id=9)
    assert prompts == [[1, 2], [5]]  # a masked prompt wins over prompt_tokens
    extended = add_generated_examples(table, prompts, [[3, 9], []])
    assert len(extended) == 3  # an empty continuation adds nothing
    assert extended[2]["input_ids"] == [1, 2, 3, 9]
    assert extended[2]["labels"] == [IGNORE_INDEX, IGNORE_INDEX, 3, 9]


def prepare_sentiment(engine_env, spec, cache_dir):
    """The spec's data prepared for classification with the sentiment teacher's tokenizer."""
    tokenizer = load_tokenizer(engine_env.model_root / "bert-sentiment")
    return prepare_data(
        spec,
        "sequence_classification",
        tokenizer,
        seed=0,
        resolve_file=engine_env.resolve_file,
        cache_dir=cache_dir,
    )


def test_a_transfer_set_follows_the_train_rows_with_every_label_ignored(engine_env, tmp_path):
    spec = DataSpec(train_file="file-sentiment", transfer_file="file-unlabeled", max_length=16)
    data = prepare_sentiment(engine_env, spec, tmp_path)
    labeled = len(data.train) - 64
    assert labeled == len(data.train.filter(lambda row: row["labels"] != IGNORE_INDEX)) > 0
    assert set(data.train[labeled:]["labels"]) == {IGNORE_INDEX}
    assert set(data.eval["labels"]) <= {0, 1}


def test_a_transfer_file_without_the_text_column_names_the_field(engine_env, tmp_path):
    spec = DataSpec(train_file="file-sentiment", transfer_file="file-counting-prompts", text_column="text")
    spec_with_pair = spec.model_copy(update={"text_pair_column": "label"})
    with pytest.raises(UserError) as caught:
        prepare_sentiment(engine_env, spec_with_pair, tmp_path)
    assert caught.value.param == "data.text_pair_column"


def test_a_test_file_is_tokenized_apart_from_train_and_eval(engine_env, tmp_path):
    spec = DataSpec(train_file="file-sentiment", test_file="file-sentiment-csv", max_length=16)
    data = prepare_sentiment(engine_env, spec, tmp_path)
    assert data.test is not None and len(data.test) == 96
    assert len(data.train) + len(data.eval) == 96
    assert set(data.test["labels"]) == {0, 1}


def test_a_test_file_without_labels_names_the_label_column(engine_env, tmp_path):
    spec = DataSpec(train_file="file-sentiment", test_file="file-unlabeled")
    with pytest.raises(UserError) as caught:
        prepare_sentiment(engine_env, spec, tmp_path)
    assert caught.value.param == "data.label_column" and "test_file" in caught.value.message


def lengths_table(lengths: list[int]) -> datasets.Dataset:
    """Rows of the given lengths, each labelled with its own index."""
    return datasets.Dataset.from_dict(
        {
            "input_ids": [[7] * length for length in lengths],
            "attention_mask": [[1] * length for length in lengths],
            "labels": list(range(len(lengths))),
            "length": lengths,
        }
    )


def test_the_latency_batch_is_a_full_batch_of_the_longest_rows():
    batch = longest_batch(lengths_table([3, 9, 1, 7, 5]), 2, pad_token_id=0)
    assert sorted(batch["labels"].tolist()) == [1, 3] and batch["input_ids"].shape == (2, 9)
    assert longest_batch(lengths_table([3, 1]), 8, pad_token_id=0)["input_ids"].shape == (2, 3)


def test_training_batches_can_carry_each_row_index_for_per_example_caches():
    table = lengths_table([2, 4, 3])
    indexed = next(iterate_batches(table, [[2, 0]], pad_token_id=0, with_index=True))
    assert indexed[EXAMPLE_INDEX].tolist() == [2, 0]
    assert EXAMPLE_INDEX not in next(iterate_batches(table, [[2, 0]], pad_token_id=0))
