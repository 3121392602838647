"""bench.lm.vs_trl's own parts: the one perplexity function, the time shares and the verdicts."""

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer, GPT2LMHeadModel

from bench.lm.assistant_perplexity import assistant_perplexity, tokenize_chat
from bench.lm.bases import install_base_model
from bench.lm.demo import CHAT_TEMPLATE
from bench.lm.time_shares import TimeShares
from bench.lm.vs_trl import compare

CHATS = [
    [{"role": "user", "content": "count from one"}, {"role": "assistant", "content": "two three four"}],
    [{"role": "user", "content": "say hello"}, {"role": "assistant", "content": "hello there"}],
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE and a 1-layer GPT-2 config sized to it, with the LM demo's chat template."""
    directory = tmp_path_factory.mktemp("base")
    texts = directory / "texts.jsonl"
    lines = ["\n".join(f"{t['role']}: {t['content']}" for t in chat) for chat in CHATS]
    texts.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines))
    install_base_model(texts, directory / "model", vocab_size=300, layers=1, width=64)
    tokenizer = AutoTokenizer.from_pretrained(directory / "model")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory / "model")
    return directory / "model"


def test_a_model_with_no_preference_scores_the_vocabulary_size_on_assistant_tokens_only(base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = GPT2LMHeadModel(AutoConfig.from_pretrained(base))  # the base is a config and a tokenizer
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied to the embeddings: every logit is 0, p = 1 / V

    score = assistant_perplexity(model, tokenizer, CHATS, batch_size=1)

    answers = sum(len(ids) - prompt for ids, prompt in (tokenize_chat(tokenizer, chat) for chat in CHATS))
    assert score["tokens"] == answers < sum(len(tokenize_chat(tokenizer, chat)[0]) for chat in CHATS)
    assert score["perplexity"] == pytest.approx(model.config.vocab_size, rel=1e-4)


def test_a_nested_timed_call_counts_once_for_the_outermost_section() -> None:
    shares = TimeShares()
    inner = shares.timed(lambda *_: "inner", lambda: time.sleep(0.02))
    outer = shares.timed(lambda *_: "outer", lambda: inner())

    outer()
    inner()

    assert set(shares.seconds) == {"outer", "inner"}
    assert 0.02 <= shares.seconds["outer"] < 0.2 and 0.02 <= shares.seconds["inner"] < 0.2
    summary = shares.summary(wall=1.0)
    assert summary["other"] == pytest.approx(
        1.0 - shares.seconds["outer"] - shares.seconds["inner"], abs=0.01
    )


def test_each_distillery_case_is_judged_against_its_trl_run() -> None:
    def run(wall: float, perplexity: float) -> dict[str, object]:
        return {"wall_seconds": wall, "score": {"perplexity": perplexity}}

    runs = {
        "trl/off_policy": run(100.0, 100.0),
        "trl/on_policy": run(200.0, 100.0),
        "distillery/off_policy": run(40.0, 101.0),
        "distillery/off_policy_exact": run(60.0, 100.0),
        "distillery/response_top_k": run(50.0, 103.0),
        "distillery/on_policy": run(150.0, 99.0),
    }

    verdicts = compare(runs, tokens=1000, epochs=1)

    assert verdicts["off_policy"]["speedup"] == pytest.approx(2.5)
    assert verdicts["off_policy"]["meets_speed"] and verdicts["off_policy"]["meets_perplexity"]
    assert not verdicts["response_top_k"]["meets_perplexity"]  # 3% worse than TRL's off-policy run
    assert not verdicts["on_policy"]["meets_speed"] and verdicts["on_policy"]["meets_perplexity"]
