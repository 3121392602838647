"""Unknown query parameters are refused, as unknown body fields are: a typo is a 422, not a default."""

from fastapi import Request
from fastapi.dependencies.models import Dependant

from app.api.errors import InvalidField
from distillery.jobspec.text import FORBIDDEN_CHARACTERS, MAX_ID_CHARS


def declared_query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route and its dependencies read, by the name a client sends."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(field.alias for field in current.query_params)
        pending.extend(current.dependencies)
    return names


# `async` though it does no I/O: a plain `def` dependency would take a trip to the thread pool.
async def reject_unknown_query_parameters(request: Request) -> None:
    """A route dependency: 422 on the first query parameter the route does not declare."""
    if not request.scope.get("query_string"):
        return  # the common case: nothing to check, and no query string to parse
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    known = declared_query_names(dependant)
    unknown = sorted(set(request.query_params) - known)
    if not unknown:
        return
    name = unknown[0]
    printable = len(name) <= MAX_ID_CHARS and not FORBIDDEN_CHARACTERS.search(name)
    accepted = ", ".join(sorted(known)) or "none"
    raise InvalidField(
        name if printable else "query",
        f"unknown query parameter {name[:MAX_ID_CHARS]!r} (this route takes: {accepted})",
        code="unknown_field",
    )
