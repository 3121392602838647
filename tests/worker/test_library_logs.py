"""Model loading's report and progress bars go to the job's log, not to the worker's console."""

from pathlib import Path
from typing import Literal

import pytest

from engine.callbacks import Callbacks
from worker.library_logs import library_messages_in_job_log


class Lines(Callbacks):
    """Keeps the job's log lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def on_message(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        self.lines.append((level, message))


def test_a_load_report_is_a_job_log_line_and_the_console_stays_quiet(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    config = BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50
    )
    BertModel(config).save_pretrained(tmp_path)
    capfd.readouterr()
    job_log = Lines()

    with library_messages_in_job_log(job_log):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3)

    console = capfd.readouterr()
    assert "Loading weights" not in console.err and "MISSING" not in console.err + console.out
    [(level, report)] = [line for line in job_log.lines if "LOAD REPORT" in line[1]]
    assert level == "info" and "classifier.weight" in report and "\x1b[" not in report
