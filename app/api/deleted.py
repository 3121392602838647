"""The answer to every deletion."""

from pydantic import BaseModel, Field


class Deleted(BaseModel):
    """The answer to a deletion."""

    id: str
    object: str = Field(
        ..., description="The deleted object's kind: `file`, `job` or `webhook`.", examples=["job"]
    )
    deleted: bool = True
