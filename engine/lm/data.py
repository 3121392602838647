"""Causal-LM examples from chats, prompt/completion pairs or plain text: tokens, trained tokens, length.

Every example is a list of token ids and a list of labels, IGNORE_INDEX where no loss is taken. A chat is
rendered with the student's chat template (a default one when its tokenizer has none) and cut into the
spans of the assistant turns and the rest; each span is tokenized on its own, so the tokens before an
assistant turn are exactly the tokens of the prompt a generation would start from.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from distillery.jobspec import DataSpec
from distillery.jobspec.data_format import (
    ASSISTANT,
    PROMPT_COLUMN,
    ResolvedFormat,
    chat_problem,
    detect_format,
    prompt_completion_problem,
)
from engine.batching import IGNORE_INDEX
from engine.errors import UserError

logger = logging.getLogger(__name__)

# For tokenizers without a chat template: "role: content" turns, each ended by EOS (so a model learns
# to stop after its answer), one per line, behind BOS where the tokenizer has one apart from EOS.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token and bos_token != eos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if not loop.first %}{{ '\\n' }}{% endif %}"
    "{{ message['role'] + ': ' + message['content'] }}{% if eos_token %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\nassistant: ' if messages else 'assistant: ' }}{% endif %}"
)
# A column the tokenized sets carry until the cut examples are counted.
CUT_COLUMN = "cut"

Example = tuple[list[int], list[int]]
Span = tuple[int, int]


def resolve_format(spec: DataSpec, columns: Sequence[str]) -> ResolvedFormat:
    """The spec's format, or for `auto` the one the columns show."""
    if spec.format != "auto":
        return spec.format
    return detect_format(columns, messages_column=spec.messages_column)


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give a tokenizer without a chat template the default one; True when it was given."""
    if tokenizer.chat_template:
        return False
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return True


def check_rows(table: datasets.Dataset, spec: DataSpec, fmt: ResolvedFormat, *, file_param: str) -> None:
    """Raise a UserError naming the row and field of the first chat or pair the format cannot read."""
    problem: Callable[[int], tuple[str, str] | None]
    if fmt == "chat":
        messages = table[spec.messages_column]
        problem = lambda row: chat_problem(messages[row])  # noqa: E731
    elif fmt == "prompt_completion":
        prompt_column = spec.prompt_column or PROMPT_COLUMN
        pairs = table.select_columns([prompt_column, spec.completion_column])
        problem = lambda row: prompt_completion_problem(pairs[row], prompt_column, spec.completion_column)  # noqa: E731
    else:
        return
    for row in range(len(table)):
        found = problem(row)
        if found is not None:
            field, message = found
            raise UserError(
                f"row {row + 1} of the {file_param.split('.')[-1]}, field {field}: {message}",
                code="invalid_data",
                param=file_param,
            )


def chat_example(
    messages: Sequence[Mapping[str, Any]], tokenizer: PreTrainedTokenizerBase, *, completion_only: bool
) -> Example:
    """A rendered chat; completion_only trains on the assistant turns (weight 0 excepted), else on all."""
    messages = [{key: value for key, value in message.items() if value is not None} for message in messages]
    rendered = render_chat(tokenizer, messages)
    spans = assistant_spans(tokenizer, messages, rendered) if completion_only else [(0, len(rendered))]
    ids: list[int] = []
    labels: list[int] = []
    cursor = 0
    for start, end in [*spans, (len(rendered), len(rendered))]:
        for text, trained in ((rendered[cursor:start], False), (rendered[start:end], True)):
            if text:
                tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
                ids += tokens
                labels += tokens if trained else [IGNORE_INDEX] * len(tokens)
        cursor = end
    return ids, labels


def render_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, Any]],
    *,
    generation_prompt: bool = False,
) -> str:
    """The messages rendered by the tokenizer's chat template, as text."""
    rendered = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=generation_prompt
    )
    assert isinstance(rendered, str)
    return rendered


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, Any]], rendered: str
) -> list[Span]:
    """Character spans of the trained assistant turns in the rendered chat, end-of-turn text included.

    A turn's span is what rendering it adds to the conversation before it, taken with the generation
    prompt. A template that renders earlier turns differently once later ones follow (some drop past
    reasoning) breaks that; there the turn's content is found in the text instead.
    """
    spans: list[Span] = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != ASSISTANT or message.get("weight", 1) == 0:
            continue
        span = None
        if index > 0:
            before = render_chat(tokenizer, messages[:index], generation_prompt=True)
            through = render_chat(tokenizer, messages[: index + 1])
            if through.startswith(before) and rendered.startswith(through) and len(before) >= cursor:
                span = (len(before), len(through))
        if span is None:
            content = str(message["content"]).strip()
            start = rendered.find(content, cursor)
            span = (start, start + len(content)) if content and start >= 0 else None
        if span is not None:
            spans.append(span)
            cursor = span[1]
    return spans


def pair_example(
    prompt: str,
    completion: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    completion_only: bool,
    eos: int | None,
) -> Example:
    """The prompt's tokens then the completion's, ended by EOS; the prompt untrained when completion_only."""
    prompt_ids = tokenizer(prompt)["input_ids"] if prompt else []
    target_ids = tokenizer(completion, add_special_tokens=not prompt_ids)["input_ids"]
    if eos is not None and (not target_ids or target_ids[-1] != eos):
        target_ids = [*target_ids, eos]
    prompt_labels = [IGNORE_INDEX] * len(prompt_ids) if completion_only else list(prompt_ids)
    return prompt_ids + target_ids, prompt_labels + target_ids


def fit_to_length(ids: list[int], labels: list[int], max_length: int) -> tuple[list[int], list[int], bool]:
    """The example cut to max_length tokens so that its trained tokens stay whole where they can.

    When the trained tokens fit, the oldest context before them goes first (and anything after the last
    trained token). When they do not, the window keeps up to half of max_length of context before the
    first trained token and cuts the end.
    """
    if len(ids) <= max_length:
        return ids, labels, False
    trained = [index for index, label in enumerate(labels) if label != IGNORE_INDEX]
    if not trained:
        return ids[:max_length], labels[:max_length], True
    first, last = trained[0], trained[-1] + 1
    fits = last - first <= max_length
    start = max(0, last - max_length) if fits else max(0, first - max_length // 2)
    return ids[start : start + max_length], labels[start : start + max_length], True


def tokenize_causal_lm(
    table: datasets.Dataset, spec: DataSpec, tokenizer: PreTrainedTokenizerBase, fmt: ResolvedFormat = "text"
) -> tuple[datasets.Dataset, dict[str, int]]:
    """input_ids, attention_mask, labels (-100 where untrained) and length of each row, and the counts of
    examples, of those truncated to max_length and of those dropped with nothing left to train on."""
    example = example_reader(spec, tokenizer, fmt)

    def encode(rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {name: [] for name in ("input_ids", "attention_mask", "labels", "length")}
        out[CUT_COLUMN] = []
        for index in range(len(next(iter(rows.values())))):
            ids, labels = example({name: values[index] for name, values in rows.items()})
            ids, labels, cut = fit_to_length(ids, labels, spec.max_length)
            if all(label == IGNORE_INDEX for label in labels):
                continue
            out["input_ids"].append(ids)
            out["attention_mask"].append([1] * len(ids))
            out["labels"].append(labels)
            out["length"].append(len(ids))
            out[CUT_COLUMN].append(cut)
        return out

    tokenized = table.map(encode, batched=True, remove_columns=table.column_names, desc="tokenize")
    counts = {
        "examples": len(table),
        "truncated": sum(tokenized[CUT_COLUMN]),
        "dropped": len(table) - len(tokenized),
    }
    return tokenized.remove_columns(CUT_COLUMN), counts


def example_reader(
    spec: DataSpec, tokenizer: PreTrainedTokenizerBase, fmt: ResolvedFormat
) -> Callable[[dict[str, Any]], Example]:
    """`read(row)`: the tokens and labels of one row of a table in this format."""
    eos = tokenizer.eos_token_id
    completion_only = spec.loss_on == "completion"

    def read(row: dict[str, Any]) -> Example:
        if fmt == "chat":
            try:
                return chat_example(row[spec.messages_column], tokenizer, completion_only=completion_only)
            except Exception as error:  # a template rejects a chat with whatever its author raised
                raise UserError(
                    f"the student's chat template cannot render a chat of the data: {error}",
                    code="invalid_data",
                    param="data.messages_column",
                ) from error
        if fmt == "prompt_completion":
            prompt, completion = row[spec.prompt_column or PROMPT_COLUMN], row[spec.completion_column]
            return pair_example(prompt, completion, tokenizer, completion_only=completion_only, eos=eos)
        text = row[spec.text_column]
        prompt = str(row[spec.prompt_column]) if spec.prompt_column else ""
        text = "" if text is None else str(text)
        return pair_example(prompt, text, tokenizer, completion_only=completion_only, eos=eos)

    return read
