"""Secrets and signatures of Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`."""

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
# The specification asks for 24 to 64 random bytes.
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret as receivers paste it into their verifier: `whsec_` and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(secret: str, *, message_id: str, body: str, at: datetime) -> dict[str, str]:
    """The headers of one try: the message id (the same on every try), its time, and the v1 HMAC-SHA256
    of `id.timestamp.body` under the secret."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }
