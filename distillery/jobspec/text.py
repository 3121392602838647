"""Bounded text: one annotated string type for every name, id, path and label a request carries."""

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

# C0 controls (NUL included) and DEL; lone surrogates cannot be stored or encoded as UTF-8.
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# What a client sees in the schema: printable text only (surrogates are not expressible there).
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MAX_ID_CHARS = 100
MAX_MODEL_PATH_CHARS = 255
MAX_NAME_CHARS = 200
MAX_COLUMN_CHARS = 256


def printable(value: str) -> str:
    """The value itself, unless it holds a control character or a lone surrogate."""
    found = FORBIDDEN_CHARACTERS.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters or invalid code points (found {char} at {index})",
            {"char": f"U+{ord(found.group()):04X}", "index": found.start()},
        )
    return value


def text_limits(max_length: int, *, min_length: int = 0) -> FieldInfo:
    """The length bounds of a text, and its printable pattern in the schema."""
    info: FieldInfo = Field(
        min_length=min_length, max_length=max_length, json_schema_extra={"pattern": PRINTABLE_PATTERN}
    )
    return info


PRINTABLE = AfterValidator(printable)

Text = Annotated[str, text_limits(MAX_NAME_CHARS), PRINTABLE]
ResourceId = Annotated[str, text_limits(MAX_ID_CHARS, min_length=1), PRINTABLE]
ColumnName = Annotated[str, text_limits(MAX_COLUMN_CHARS, min_length=1), PRINTABLE]
ModelPath = Annotated[str, text_limits(MAX_MODEL_PATH_CHARS, min_length=1), PRINTABLE]
