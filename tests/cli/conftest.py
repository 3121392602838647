"""Fixtures for the client and command-line tests."""

import pytest
from cli_fake_api import FakeApi


@pytest.fixture
def api() -> FakeApi:
    """An empty fake API; each test adds the routes it needs."""
    return FakeApi()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling loops run without waiting."""
    monkeypatch.setattr("time.sleep", lambda _seconds: None)
