"""A real S3 API server for the tests: moto's, in server mode, on a loopback port of its own.

Its objects live in this process, so `stop()` closes the port (an outage) and `start()` brings the same
store back. Each test takes a bucket of its own.
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from local_ports import free_port
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoS3:
    """A started moto server; `environment(bucket)` gives what a process needs to use it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        """Listen (again) on the same port, with the objects stored so far."""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        """Close the port: requests are refused until `start()`."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def environment(self, url: str) -> dict[str, str]:
        """The variables that point a process's store at `url` on this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.endpoint, "DISTILLERY_STORAGE_URL": url}

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name."""
        import boto3

        name = f"test-{secrets.token_hex(6)}"
        client = boto3.client("s3", endpoint_url=self.endpoint, **_client_credentials())
        client.create_bucket(Bucket=name)
        return name


def _client_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_REGION"],
    }


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    """A started server, stopped at the end."""
    server = MotoS3()
    server.start()
    try:
        yield server
    finally:
        server.stop()
