"""What every command shares: the server's address and key, and the client built from them."""

from dataclasses import dataclass

import typer

from distillery.client import DistilleryClient


class CliError(Exception):
    """A user-facing failure of the command line itself (a bad spec file, a missing config)."""


@dataclass
class CliState:
    """The global options; a test passes one holding a ready client as the click context's `obj`."""

    url: str | None = None
    api_key: str | None = None
    client: DistilleryClient | None = None

    def get_client(self) -> DistilleryClient:
        """The client for this invocation, built on first use."""
        if self.client is None:
            self.client = DistilleryClient(base_url=self.url, api_key=self.api_key)
        return self.client


def client_of(ctx: typer.Context) -> DistilleryClient:
    """The invocation's client, from the state the root callback stored."""
    return ctx.ensure_object(CliState).get_client()
