"""Table of API keys, stored hashed."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, new_id, utcnow


class ApiKey(Base):
    """A bearer key of one tenant; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None] = mapped_column(doc="After this moment the key answers 401.")
    last_used_at: Mapped[datetime | None] = mapped_column(doc="Last authenticated request, to the minute.")
    max_running_jobs: Mapped[int | None] = mapped_column(
        doc="Most jobs its tenant runs at once; None: the deployment's default."
    )
    max_running_devices: Mapped[int | None] = mapped_column(
        doc="Most devices its tenant's running jobs hold at once; None: the deployment's default."
    )
