"""Cursor pagination shared by the list endpoints: newest first, `after` an id from the previous page."""

from collections.abc import Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import Session

from app.api.errors import InvalidField
from distillery.jobspec.text import ResourceId

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page, 1 to 100.")]
After = Annotated[
    ResourceId | None,
    Query(description="The `last_id` of the previous page; omit for the first page."),
]


Item = TypeVar("Item")
# The type of the items' ids: a string, or a job event's sequence number.
Cursor = TypeVar("Cursor", str, int)


class ListObject(BaseModel, Generic[Item, Cursor]):
    """A page of items; `has_more` says whether another page follows; `first_id` and `last_id` are the ids
    of its first and last item (null on an empty page)."""

    object: Literal["list"] = "list"
    has_more: bool
    data: list[Item]
    first_id: Cursor | None
    last_id: Cursor | None


ListType = TypeVar("ListType", bound=ListObject[Any, Any])


def list_page(list_type: type[ListType], items: Sequence[Any], *, has_more: bool = False) -> ListType:
    """A page of public items, with the ids of its first and last item for the next request's cursor."""
    return list_type(
        data=list(items),
        has_more=has_more,
        first_id=items[0].id if items else None,
        last_id=items[-1].id if items else None,
    )


def page_newest_first(
    session: Session, statement: Select[Any], *, entity: Any, tenant: str, limit: int, after: str | None
) -> tuple[list[Any], bool]:
    """One page of `statement`'s rows ordered by (created_at, id) descending, and whether more follow.

    `entity` is the listed table (with `id`, `tenant` and `created_at`); an `after` that names no row of
    the tenant is a 422 on `after`, so a client never silently restarts from the top.
    """
    if after is not None:
        cursor = session.execute(
            select(entity.created_at, entity.id).where(entity.id == after, entity.tenant == tenant)
        ).first()
        if cursor is None:
            raise InvalidField(
                "after",
                f"unknown cursor '{after}': pass the `last_id` of a previous page",
                code="invalid_cursor",
            )
        # A row comparison, not the equivalent OR: an index range, so a deep page costs what the first does.
        statement = statement.where(
            tuple_(entity.created_at, entity.id) < tuple_(cursor.created_at, cursor.id)
        )
    rows = list(
        session.scalars(statement.order_by(entity.created_at.desc(), entity.id.desc()).limit(limit + 1))
    )
    return rows[:limit], len(rows) > limit
