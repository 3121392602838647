"""The causal-LM demo at a tiny scale: chats, a teacher, three students with their controls, the table."""

import json
import math
from pathlib import Path

import pytest
from local_ports import free_port
from rich.console import Console

from app.cli.quickstart.comparison import upload
from app.cli.quickstart.service import embedded_service
from bench.lm.demo import STUDENTS, Scale, chat, format_table, prepare, run_demo, summarize

pytestmark = pytest.mark.slow

TINY = Scale(
    train_rows=48,
    eval_rows=12,
    test_rows=12,
    vocab_size=320,
    pieces_vocab_size=288,
    width=32,
    teacher_layers=2,
    student_layers=1,
    teacher_epochs=1,
    student_epochs=2,
    batch_size=16,
    max_length=48,
    learning_rate=3e-3,
    top_k=8,
    new_tokens=4,
)


def test_a_tweet_becomes_a_question_about_it_and_its_answer() -> None:
    tweet = {"text": "the flight was late again and nobody told us", "label": "negative"}
    assert chat(0, tweet) == [
        {"role": "user", "content": "Continue this negative tweet: the flight was"},
        {"role": "assistant", "content": "late again and nobody told us"},
    ]
    assert chat(1, tweet)[1] == {"role": "assistant", "content": "negative"}
    assert chat(0, {"text": "too short", "label": "neutral"})[1]["content"] == "neutral"


def test_the_demo_distils_three_ways_on_chats_and_compares_each_with_its_control(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    output = Console(record=True, width=140)
    _, chats = prepare(data_dir, TINY)
    with embedded_service(data_dir, port=free_port(), log_path=tmp_path / "service.log") as client:
        files = upload(client, chats["train"], chats["eval"], chats["test"])
        jobs = run_demo(client, files, TINY, tmp_path / "students", output)
    summary = summarize(jobs, TINY)

    # Every job reads the chats; each control is its student's run by the labels alone, linked to it.
    assert all(job["spec"]["data"]["format"] == "chat" for job in jobs.values())
    for role in STUDENTS:
        student, control = jobs[role], jobs[f"{role}_control"]
        assert student["spec"]["teacher"]["job"] == jobs["teacher"]["id"]
        assert control["parent_id"] == student["id"] and control["spec"]["method"]["type"] == "supervised"
        assert control["spec"]["student"] == student["spec"]["student"]
    assert jobs["gkd"]["result"]["training"]["on_policy_batches"] > 0

    rows = summary["students"]
    assert list(rows) == list(STUDENTS)
    for role, row in rows.items():
        student = row["student"]
        assert row["split"] == "test", role
        assert 1 < student["perplexity"] < math.inf and 0 <= student["top1_agreement"] <= 1
        # The gain is the control's perplexity less the student's, both on the test split. The report's
        # perplexity sums per-example losses and the language-model section's sums the batch: they agree to
        # float32 rounding of perplexities in the hundreds, not to the gain's last digits.
        control_perplexity = jobs[f"{role}_control"]["result"]["student"]["test"]["perplexity"]
        assert row["control_perplexity"] == pytest.approx(control_perplexity)
        expected_gain = control_perplexity - student["perplexity"]
        assert row["gain"]["perplexity"] == pytest.approx(expected_gain, abs=1e-5 * control_perplexity)
    # Token-level KD reads the teacher's top-k log-probabilities from the cache: fp16 values and int32
    # indices for each of k tokens and one fp16 tail bucket per token, plus a small index and headers.
    cache = rows["response"]["teacher_cache"]
    assert cache["status"] == "miss" and cache["tokens"] > 0
    assert 6 * TINY.top_k + 2 <= cache["bytes_per_token"] < 6 * TINY.top_k + 2 + 40
    # GKD's off-policy half of two epochs reads each example's teacher outputs about once: no pass is
    # stored, its teacher runs live.
    live = rows["gkd"]["teacher_cache"]
    assert live["status"] == "live" and "each about once" in live["reason"]
    # The cross-tokenizer student has its own vocabulary; most of its targets meet a teacher position.
    assert rows["uld"]["vocabulary"] != rows["response"]["vocabulary"]
    assert rows["uld"]["aligned_fraction"] > 0.8
    table = format_table(summary)
    assert all(role in table for role in STUDENTS) and "gain (ppl)" in table
    assert "succeeded" in output.export_text()
    json.dumps(summary)
