"""Who a recently resolved API key speaks for, so that a hot read need not look the key up first.

A cached grant says which tenant and key a token is; it never says that the key is still valid. A
route that takes one (`app.auth.deps.CachedGrantDep`) re-checks in its own query that the key exists and
is neither revoked nor expired (`app.jobs.reads`), so a revocation is refused from the next request, as
without the cache, and the key costs no query and no thread of its own. An entry lives `ttl_seconds`,
after which the key is looked up again (which also keeps `last_used_at` current). Every method runs on
the event loop's thread, so no lock is needed.
"""

import time

from app.auth.service import KeyGrant
from app.core.base import utcnow

# More keys than this in use at once is not a case to optimise: the cache starts over.
MAX_KEYS = 10_000


class GrantCache:
    """Grants by the hash of their key, each for `ttl_seconds` and never past the key's expiry."""

    def __init__(self, *, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._grants: dict[str, tuple[KeyGrant, float]] = {}

    def get(self, key_hash: str) -> KeyGrant | None:
        """The key's grant if it was resolved within `ttl_seconds` and has not expired since."""
        entry = self._grants.get(key_hash)
        if entry is None:
            return None
        grant, stored_at = entry
        expired = grant.expires_at is not None and grant.expires_at <= utcnow()
        if expired or time.monotonic() - stored_at >= self.ttl_seconds:
            del self._grants[key_hash]
            return None
        return grant

    def put(self, key_hash: str, grant: KeyGrant) -> None:
        """Keep a grant just resolved from the database."""
        if len(self._grants) >= MAX_KEYS:
            self._grants.clear()
        self._grants[key_hash] = (grant, time.monotonic())
