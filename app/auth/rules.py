"""What an API key's tenant name, label and expiry may be, for every place that creates keys."""

import re
from datetime import datetime, timedelta

# The `tenant` columns are VARCHAR(64).
TENANT_MAX_CHARS = 64
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TENANT_RULE = (
    f"1 to {TENANT_MAX_CHARS} characters: ASCII letters, digits, '-', '_' and '.', "
    "starting with a letter or a digit"
)
# The `api_keys.name` column is VARCHAR(200).
KEY_NAME_MAX_CHARS = 200
# Ten years: a key that should never expire is created without an expiry.
MAX_KEY_LIFETIME = timedelta(days=3653)
TOO_LATE = (
    f"the expiry is more than {MAX_KEY_LIFETIME.days} days (ten years) from now; "
    "a key created without an expiry never expires"
)


class InvalidKeyField(ValueError):
    """A tenant name, label or expiry no key may have; `field` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_tenant(tenant: str) -> str:
    """The tenant name unchanged when it follows TENANT_RULE; raises InvalidKeyField otherwise."""
    if not tenant:
        raise InvalidKeyField("tenant", f"the tenant name is empty; it must be {TENANT_RULE}")
    if len(tenant) > TENANT_MAX_CHARS:
        raise InvalidKeyField(
            "tenant", f"the tenant name has {len(tenant)} characters; it must be {TENANT_RULE}"
        )
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidKeyField(
            "tenant", f"the tenant name {tenant!r} is not allowed; it must be {TENANT_RULE}"
        )
    return tenant


def check_expiry(expires_at: datetime, now: datetime) -> datetime:
    """The expiry unchanged when it is after `now` and at most MAX_KEY_LIFETIME later."""
    if expires_at <= now:
        raise InvalidKeyField("expires", "the expiry is not in the future")
    if expires_at - now > MAX_KEY_LIFETIME:
        raise InvalidKeyField("expires", TOO_LATE)
    return expires_at


def check_key_name(name: str) -> str:
    """The key's label unchanged when it fits its column; raises InvalidKeyField otherwise."""
    if len(name) > KEY_NAME_MAX_CHARS:
        raise InvalidKeyField(
            "name", f"the name has {len(name)} characters; the limit is {KEY_NAME_MAX_CHARS}"
        )
    return name
