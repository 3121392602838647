"""Bounds on `student.config`, the overrides of a transformers config, checked without transformers.

The API cannot build the config (it has no transformers), so it checks the shape (size, nesting, keys,
finite numbers, printable text) and the types and ranges of the fields common to the supported
architectures; the worker checks the rest when it builds the model.
"""

import json
import math
from typing import Any

from pydantic_core import PydanticCustomError

from distillery.jobspec.text import FORBIDDEN_CHARACTERS, PRINTABLE_PATTERN

MAX_CONFIG_BYTES = 16 * 1024
MAX_CONFIG_DEPTH = 4
MAX_CONFIG_KEYS = 256
MAX_CONFIG_TEXT_CHARS = 1024

# Positive integer fields and their upper bounds (BERT-like, DistilBERT, GPT-2, Llama-like names).
LAYERS, WIDTH, HEADS, FFN, TOKENS = 256, 65_536, 1_024, 262_144, 1_048_576
POSITIVE_INTS: dict[str, int] = {
    "num_hidden_layers": LAYERS,
    "n_layer": LAYERS,
    "n_layers": LAYERS,
    "num_layers": LAYERS,
    "hidden_size": WIDTH,
    "n_embd": WIDTH,
    "dim": WIDTH,
    "d_model": WIDTH,
    "num_attention_heads": HEADS,
    "num_key_value_heads": HEADS,
    "n_head": HEADS,
    "n_heads": HEADS,
    "num_heads": HEADS,
    "head_dim": WIDTH,
    "intermediate_size": FFN,
    "n_inner": FFN,
    "hidden_dim": FFN,
    "ffn_dim": FFN,
    "vocab_size": TOKENS,
    "max_position_embeddings": TOKENS,
    "n_positions": TOKENS,
    "n_ctx": TOKENS,
    "type_vocab_size": HEADS,
}
PROBABILITIES = frozenset(
    {
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "classifier_dropout",
        "hidden_dropout",
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        "summary_first_dropout",
        "dropout",
        "attention_dropout",
        "activation_dropout",
        "seq_classif_dropout",
        "qa_dropout",
    }
)
POSITIVE_FLOATS = frozenset({"layer_norm_eps", "layer_norm_epsilon", "rms_norm_eps"})
NON_NEGATIVE_FLOATS = frozenset({"initializer_range"})
# Fields whose null means "derive it" to transformers.
NULLABLE = frozenset({"classifier_dropout", "n_inner", "head_dim", "num_key_value_heads"})
# (width, heads): the width must split evenly into the heads where both are given.
DIVISIBLE = (
    ("hidden_size", "num_attention_heads"),
    ("n_embd", "n_head"),
    ("dim", "n_heads"),
    ("d_model", "num_heads"),
    ("num_attention_heads", "num_key_value_heads"),
)


def _invalid(param: str, message: str, **context: Any) -> PydanticCustomError:
    # The dotted key is appended to the field's location (`student.config`) by the API's error handler.
    return PydanticCustomError(f"param:{param}", message, context or None)


def check_student_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config itself, if its shape and its known fields are sound; raises a located error if not."""
    _check_shape(config)
    size = len(json.dumps(config, allow_nan=False, separators=(",", ":")).encode())
    if size > MAX_CONFIG_BYTES:
        raise PydanticCustomError(
            "config_too_large",
            "the config is {size} bytes serialized; the limit is {limit}",
            {"size": size, "limit": MAX_CONFIG_BYTES},
        )
    for key, value in config.items():
        _check_known_field(key, value)
    for width, heads in DIVISIBLE:
        given = isinstance(config.get(width), int) and isinstance(config.get(heads), int)
        if given and config[width] % config[heads]:
            raise _invalid(
                width,
                "{width} ({value}) must be a multiple of {heads} ({count})",
                width=width,
                value=config[width],
                heads=heads,
                count=config[heads],
            )
    return config


def _check_shape(config: dict[str, Any]) -> None:
    """Nesting, key count, finite numbers and printable text, walked without recursion."""
    keys = 0
    pending: list[tuple[str, Any, int]] = [(key, value, 1) for key, value in config.items()]
    for key in config:
        _check_key(None, key)
    while pending:
        path, value, depth = pending.pop()
        keys += 1
        if keys > MAX_CONFIG_KEYS:
            raise PydanticCustomError(
                "config_too_large", "the config holds more than {limit} keys", {"limit": MAX_CONFIG_KEYS}
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise _invalid(path, "numbers must be finite")
        if isinstance(value, str):
            _check_text(path, value)
        children: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            for child_key in value:
                _check_key(path, str(child_key))
            children = [(f"{path}.{child_key}", child) for child_key, child in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}.{index}", child) for index, child in enumerate(value)]
        if children and depth >= MAX_CONFIG_DEPTH:
            raise _invalid(path, "the config nests deeper than {limit} levels", limit=MAX_CONFIG_DEPTH)
        pending.extend((child_path, child, depth + 1) for child_path, child in children)


def _check_text(path: str, text: str) -> None:
    problem = _text_problem(text)
    if problem:
        raise _invalid(path, problem)


def _check_key(parent: str | None, key: str) -> None:
    """A key is reported at the object holding it: a key with a control character is no name to show."""
    problem = _text_problem(key)
    if problem and parent is None:
        raise PydanticCustomError(
            "invalid_key", "a key of the config is invalid: {problem}", {"problem": problem}
        )
    if problem and parent is not None:
        raise _invalid(parent, "a key of this object is invalid: {problem}", problem=problem)


def _text_problem(text: str) -> str | None:
    if len(text) > MAX_CONFIG_TEXT_CHARS:
        return f"texts in the config hold at most {MAX_CONFIG_TEXT_CHARS} characters"
    if FORBIDDEN_CHARACTERS.search(text):
        return "texts must not contain control characters or invalid code points"
    return None


def _check_known_field(key: str, value: Any) -> None:
    """Types and ranges of the fields common to the supported architectures."""
    if value is None and key in NULLABLE:
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or isinstance(value, float)
    if key in POSITIVE_INTS:
        limit = POSITIVE_INTS[key]
        if not is_int or not 1 <= value <= limit:
            raise _invalid(key, "{key} must be an integer from 1 to {limit}", key=key, limit=limit)
    elif key in PROBABILITIES:
        if not is_number or not 0 <= value <= 1:
            raise _invalid(key, "{key} must be a probability from 0 to 1", key=key)
    elif key in POSITIVE_FLOATS:
        if not is_number or value <= 0:
            raise _invalid(key, "{key} must be a number above 0", key=key)
    elif key in NON_NEGATIVE_FLOATS and (not is_number or value < 0):
        raise _invalid(key, "{key} must be a number of at least 0", key=key)


def known_fields_schema() -> dict[str, Any]:
    """JSON Schema of the config: its known fields typed and ranged, any other field allowed."""
    properties: dict[str, Any] = {
        key: {"type": "integer", "minimum": 1, "maximum": limit} for key, limit in POSITIVE_INTS.items()
    }
    properties.update({key: {"type": "number", "minimum": 0, "maximum": 1} for key in PROBABILITIES})
    properties.update({key: {"type": "number", "exclusiveMinimum": 0} for key in POSITIVE_FLOATS})
    properties.update({key: {"type": "number", "minimum": 0} for key in NON_NEGATIVE_FLOATS})
    for key in NULLABLE:
        properties[key] = {"anyOf": [properties[key], {"type": "null"}]}
    return {
        "properties": properties,
        "maxProperties": MAX_CONFIG_KEYS,
        "propertyNames": {"maxLength": MAX_CONFIG_TEXT_CHARS, "pattern": PRINTABLE_PATTERN},
    }
