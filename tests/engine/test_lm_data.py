"""Causal-LM data formats: chats rendered with a template and trained on the assistant turns,
prompt/completion pairs trained on the completion, plain text, and truncation that keeps trained tokens."""

from typing import Any

import datasets
import pytest
from lm_assets import CHATML_TEMPLATE, bpe_tokenizer, chat_texts, counting_chats

from distillery.jobspec import DataSpec
from engine.batching import IGNORE_INDEX
from engine.data import check_columns, prepare_data
from engine.errors import UserError
from engine.lm.data import (
    DEFAULT_CHAT_TEMPLATE,
    chat_example,
    check_rows,
    fit_to_length,
    resolve_format,
    tokenize_causal_lm,
)

CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "you count"},
    {"role": "user", "content": "count from two"},
    {"role": "assistant", "content": "two three four"},
    {"role": "user", "content": "count from six"},
    {"role": "assistant", "content": "six seven"},
]


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE tokenizer with Qwen's ChatML template."""
    return bpe_tokenizer(chat_texts(counting_chats(64, seed=0)), chat_template=CHATML_TEMPLATE)


def trained_text(tokenizer, ids, labels):
    return tokenizer.decode(
        [token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    )


def test_the_format_is_detected_from_the_columns_unless_named():
    spec = DataSpec(train_file="f")
    assert resolve_format(spec, ["messages"]) == "chat"
    assert resolve_format(spec, ["prompt", "completion", "id"]) == "prompt_completion"
    assert resolve_format(spec, ["prompt", "text"]) == "text"
    assert resolve_format(DataSpec(train_file="f", format="text"), ["messages", "text"]) == "text"
    assert resolve_format(DataSpec(train_file="f", messages_column="chat"), ["chat"]) == "chat"


def test_a_chat_trains_on_its_assistant_turns_with_their_end_of_turn(tokenizer):
    ids, labels = chat_example(CHAT, tokenizer, completion_only=True)
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert trained_text(tokenizer, ids, labels) == "two three four<|im_end|>\nsix seven<|im_end|>\n"
    # The tokens before an assistant turn are the tokens of the prompt a generation starts from.
    prompt = tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    first_trained = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert ids[:first_trained] == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_an_assistant_turn_of_weight_zero_is_not_trained_and_loss_on_all_trains_everything(tokenizer):
    weighted = [*CHAT[:4], {**CHAT[4], "weight": 0}]
    ids, labels = chat_example(weighted, tokenizer, completion_only=True)
    assert trained_text(tokenizer, ids, labels) == "two three four<|im_end|>\n"
    ids, labels = chat_example(CHAT, tokenizer, completion_only=False)
    assert labels == ids


def test_a_tokenizer_without_a_chat_template_gets_the_default_and_the_job_says_so(tmp_path):
    plain = bpe_tokenizer(chat_texts(counting_chats(32, seed=1)))
    plain.pad_token = plain.eos_token
    table = datasets.Dataset.from_list([{"messages": CHAT}] * 4)
    path = tmp_path / "chat.jsonl"
    table.to_json(path)
    data = prepare_data(
        DataSpec(train_file="f", eval_file="f"),
        "causal_lm",
        plain,
        seed=0,
        resolve_file=lambda _: path,
        cache_dir=tmp_path,
    )
    assert plain.chat_template == DEFAULT_CHAT_TEMPLATE
    assert (data.lm_format, data.chat_template) == ("chat", "default")
    assert "default one" in data.lm_messages(128)[0]
    row = data.train[0]
    assert (
        trained_text(plain, row["input_ids"], row["labels"])
        == "two three four<|endoftext|>six seven<|endoftext|>"
    )
    assert plain.decode(row["input_ids"]).startswith("system: you count<|endoftext|>\nuser: count from two")


def test_a_prompt_completion_pair_trains_on_the_completion_and_ends_with_eos(tokenizer):
    table = datasets.Dataset.from_dict({"prompt": ["count from two:"], "completion": [" two three"]})
    rows, counts = tokenize_causal_lm(table, DataSpec(train_file="f"), tokenizer, "prompt_completion")
    row = rows[0]
    assert trained_text(tokenizer, row["input_ids"], row["labels"]) == " two three<|endoftext|>"
    assert counts == {"examples": 1, "truncated": 0, "dropped": 0}
    every, _ = tokenize_causal_lm(
        table, DataSpec(train_file="f", loss_on="all"), tokenizer, "prompt_completion"
    )
    assert every[0]["labels"] == every[0]["input_ids"]


def test_truncation_drops_the_oldest_context_and_keeps_the_trained_tokens():
    ids = list(range(10))
    labels = [IGNORE_INDEX] * 6 + [6, 7, 8] + [IGNORE_INDEX]
    assert fit_to_length(ids, labels, 5) == ([4, 5, 6, 7, 8], [IGNORE_INDEX, IGNORE_INDEX, 6, 7, 8], True)
    assert fit_to_length(ids, labels, 10) == (ids, labels, False)
    # Trained tokens longer than the window: half of it for context, then the start of the answer.
    long_answer = [IGNORE_INDEX] * 4 + list(range(4, 10))
    assert fit_to_length(ids, long_answer, 4) == ([2, 3, 4, 5], [IGNORE_INDEX, IGNORE_INDEX, 4, 5], True)


def test_a_long_chat_keeps_its_last_assistant_turn_and_the_counts_say_what_was_cut(tokenizer):
    table = datasets.Dataset.from_list([{"messages": CHAT}, {"messages": CHAT[:3]}])
    assistant_only = [{"role": "user", "content": "x " * 40}, {"role": "assistant", "content": "one"}]
    table = datasets.concatenate_datasets([table, datasets.Dataset.from_list([{"messages": assistant_only}])])
    full = len(chat_example(CHAT, tokenizer, completion_only=True)[0])
    spec = DataSpec(train_file="f", max_length=full - 4)
    rows, counts = tokenize_causal_lm(table, spec, tokenizer, "chat")
    assert counts == {"examples": 3, "truncated": 2, "dropped": 0}
    first = rows[0]
    assert len(first["input_ids"]) == full - 4
    assert trained_text(tokenizer, first["input_ids"], first["labels"]).endswith("six seven<|im_end|>\n")
    assert trained_text(tokenizer, rows[2]["input_ids"], rows[2]["labels"]) == "one<|im_end|>\n"


def test_a_long_prompt_loses_its_start_and_keeps_the_completion(tokenizer):
    table = datasets.Dataset.from_dict({"prompt": ["one " * 30], "completion": [" three"]})
    spec = DataSpec(train_file="f", max_length=8)
    rows, counts = tokenize_causal_lm(table, spec, tokenizer, "prompt_completion")
    assert counts == {"examples": 1, "truncated": 1, "dropped": 0}
    assert len(rows[0]["input_ids"]) == 8
    assert trained_text(tokenizer, rows[0]["input_ids"], rows[0]["labels"]) == " three<|endoftext|>"


def test_a_chat_with_nothing_to_train_is_dropped_and_counted(tokenizer):
    untrained = [*CHAT[:2], {**CHAT[2], "weight": 0}]
    table = datasets.Dataset.from_list([{"messages": CHAT}, {"messages": untrained}])
    rows, counts = tokenize_causal_lm(table, DataSpec(train_file="f"), tokenizer, "chat")
    assert (len(rows), counts) == (1, {"examples": 2, "truncated": 0, "dropped": 1})


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"messages": CHAT}, {"messages": [{"role": "user", "content": "hi"}]}],
            "row 2 of the train_file, field messages",
        ),
        (
            [{"messages": [{"role": "assistant", "content": None}]}],
            "row 1 of the train_file, field messages[0].content",
        ),
    ],
)
def test_a_chat_the_engine_cannot_read_is_a_user_error_naming_the_row_and_field(rows, message):
    with pytest.raises(UserError) as caught:
        check_rows(
            datasets.Dataset.from_list(rows), DataSpec(train_file="f"), "chat", file_param="data.train_file"
        )
    assert caught.value.param == "data.train_file"
    assert message in str(caught.value)


def test_a_chat_file_without_its_messages_column_names_the_field():
    table = datasets.Dataset.from_dict({"text": ["a"]})
    with pytest.raises(UserError) as caught:
        check_columns(
            table, DataSpec(train_file="f", format="chat"), "causal_lm", file_param="data.train_file"
        )
    assert caught.value.param == "data.messages_column"
