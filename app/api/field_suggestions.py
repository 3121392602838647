"""A "did you mean" for an unknown field: the closest name the request's model accepts at that place."""

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

# Path parts FastAPI puts in front of a field's location.
REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


def body_model(route: Any) -> Any:
    """The annotation of a route's single JSON body, or None."""
    dependant = getattr(route, "dependant", None)
    params = getattr(dependant, "body_params", None) or []
    return params[0].field_info.annotation if len(params) == 1 else None


def accepted_names(annotation: Any, location: Sequence[Any]) -> list[str]:
    """The field names of the model holding the last part of `location` (pydantic's raw location)."""
    parts = list(location)
    if parts and parts[0] in REQUEST_PARTS:
        parts = parts[1:]
    node = annotation
    for part in parts[:-1]:
        node = _step(node, part)
        if node is None:
            return []
    model = _model(node)
    return list(model.model_fields) if model is not None else []


def suggestion(annotation: Any, location: Sequence[Any]) -> str | None:
    """`did you mean 'temperature'?` for a misspelt field, or None when nothing is close."""
    if not location:
        return None
    names = accepted_names(annotation, location)
    close = difflib.get_close_matches(str(location[-1]), names, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _step(node: Any, part: Any) -> Any:
    """The annotation one location part further down: a model's field, a union's tagged member, an item."""
    node = _unwrapped(node)
    model = _model(node)
    if model is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field is not None else None
    args = typing.get_args(node)
    origin = typing.get_origin(node)
    if origin in (list, tuple, set, frozenset, Sequence) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    if _is_union(node):
        members = [_model(arg) for arg in args]
        tagged = [member for member in members if member is not None and _tag(member) == part]
        return tagged[0] if tagged else None
    return None


def _unwrapped(node: Any) -> Any:
    """`X` for `Annotated[X, ...]` and for `X | None`."""
    while typing.get_origin(node) is typing.Annotated:
        node = typing.get_args(node)[0]
    if _is_union(node):
        members = [arg for arg in typing.get_args(node) if arg is not type(None)]
        if len(members) == 1:
            return _unwrapped(members[0])
    return node


def _is_union(node: Any) -> bool:
    return typing.get_origin(node) in (typing.Union, types.UnionType)


def _model(node: Any) -> type[BaseModel] | None:
    node = _unwrapped(node)
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _tag(model: type[BaseModel]) -> Any:
    """The value of a union member's `type` literal (the discriminator pydantic puts in locations)."""
    field = model.model_fields.get("type")
    if field is None:
        return None
    values = typing.get_args(field.annotation)
    return values[0] if values else field.default
