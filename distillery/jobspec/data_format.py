"""Causal-LM data formats: chat messages, prompt/completion pairs and plain text, and their row checks.

Shared by the API (checked on upload and at job creation) and the engine (checked again on reading), so
both name the same row and field for the same mistake.
"""

from collections.abc import Collection, Mapping
from typing import Any, Literal

DataFormat = Literal["auto", "chat", "prompt_completion", "text"]
ResolvedFormat = Literal["chat", "prompt_completion", "text"]
LossOn = Literal["completion", "all"]
MESSAGES_COLUMN = "messages"
PROMPT_COLUMN = "prompt"
COMPLETION_COLUMN = "completion"
# OpenAI's chat roles ("developer" is its newer name for "system").
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
ASSISTANT = "assistant"


def detect_format(columns: Collection[str], *, messages_column: str = MESSAGES_COLUMN) -> ResolvedFormat:
    """chat when there is a messages column, prompt_completion with prompt and completion, else text."""
    if messages_column in columns:
        return "chat"
    if PROMPT_COLUMN in columns and COMPLETION_COLUMN in columns:
        return "prompt_completion"
    return "text"


def chat_problem(messages: Any) -> tuple[str, str] | None:
    """(field, what is wrong) for a row's messages that are not an OpenAI chat, else None.

    A chat is a non-empty list of {"role", "content"} objects, role one of CHAT_ROLES and content a
    string, with at least one assistant turn; an assistant turn may carry "weight" 0 or 1 (0: not trained).
    """
    if not isinstance(messages, list) or not messages:
        return MESSAGES_COLUMN, "must be a non-empty list of {role, content} objects"
    for index, message in enumerate(messages):
        where = f"{MESSAGES_COLUMN}[{index}]"
        if not isinstance(message, Mapping):
            return where, f"must be an object with role and content, not {_json_type(message)}"
        role = message.get("role")
        if role not in CHAT_ROLES:
            return f"{where}.role", f"must be one of {', '.join(CHAT_ROLES)} (got {role!r:.40})"
        if not isinstance(message.get("content"), str):
            return f"{where}.content", f"must be a string, not {_json_type(message.get('content'))}"
        weight = message.get("weight")
        if weight is not None and (role != ASSISTANT or weight not in (0, 1) or isinstance(weight, bool)):
            return f"{where}.weight", "is allowed on assistant turns only, as 0 or 1"
    if not any(message["role"] == ASSISTANT for message in messages):
        return MESSAGES_COLUMN, "holds no assistant turn, so there is nothing to learn"
    return None


def prompt_completion_problem(row: Mapping[str, Any], prompt: str, completion: str) -> tuple[str, str] | None:
    """(field, what is wrong) for a pair whose prompt or completion is missing or not a string, else None."""
    for column in (prompt, completion):
        if not isinstance(row.get(column), str):
            return column, f"must be a string, not {_json_type(row.get(column))}"
    return None


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages that speak the file's language."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "an object")
