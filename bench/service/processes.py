"""Real servers and processes for the service benchmarks: Postgres database, Redis, API and workers."""

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.paths import ROOT


class ServiceProcess:
    """A process of the service (API or worker) run from this source tree, logging to a file."""

    def __init__(self, command: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.command, self.env, self.log_path = command, env, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**self.env, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (a worker's warm shutdown finishes its job first), then SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def service_env(*, database_url: str, broker_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of every service process: no inherited DISTILLERY_* variable, these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTILLERY_")}
    env.update(
        {
            "DISTILLERY_DATABASE_URL": database_url,
            "DISTILLERY_BROKER_URL": broker_url,
            "DISTILLERY_DATA_DIR": str(data_dir),
            "DISTILLERY_QUEUE_NAME": f"distillery.bench.{secrets.token_hex(4)}",
        }
    )
    env.update({f"DISTILLERY_{key.upper()}": value for key, value in settings.items()})
    return env


def wait_ready(url: str, process: ServiceProcess, timeout: float = 120) -> None:
    """Poll /readyz until the API answers ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process is not None and process.process.poll() is not None:
            raise RuntimeError(f"the API exited; see {process.log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the API was not ready in {timeout:.0f}s; see {process.log_path}")


def save_tiny_classifier(directory: Path) -> None:
    """A one-layer BERT sentiment classifier with a word-level tokenizer: the cheapest real teacher."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "the", "was"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
