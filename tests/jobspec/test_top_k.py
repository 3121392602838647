"""The token-level methods' top_k: top-k by default, the exact loss only when asked, old specs still valid."""

from typing import Any

import pytest
from pydantic import ValidationError

from distillery.jobspec import JobSpec
from distillery.jobspec.methods import DEFAULT_TOP_K, effective_top_k
from distillery.jobspec.teacher_outputs import teacher_outputs_signature

LM: dict[str, Any] = {
    "task": "causal_lm",
    "teacher": {"path": "gpt2-chat"},
    "data": {"train_file": "file-chats"},
}


@pytest.mark.parametrize("method", ["response", "gkd", "feature"])
@pytest.mark.parametrize(("top_k", "k"), [(None, DEFAULT_TOP_K), (8, 8), ("exact", None)])
def test_top_k_defaults_to_k_and_exact_asks_for_the_full_vocabulary(method: str, top_k: Any, k: Any) -> None:
    spec = JobSpec.model_validate({**LM, "method": {"type": method, "top_k": top_k}})
    assert effective_top_k(spec.method.top_k) == k  # type: ignore[union-attr]


def test_an_old_spec_without_top_k_still_validates() -> None:
    spec = JobSpec.model_validate({**LM, "method": {"type": "gkd", "lmbda": 0.5}})
    assert spec.method.top_k is None  # type: ignore[union-attr]


@pytest.mark.parametrize("top_k", ["exact", 8])
def test_top_k_is_refused_on_a_classifier(top_k: Any) -> None:
    with pytest.raises(ValidationError, match="top_k"):
        method = {"type": "response", "top_k": top_k}
        JobSpec.model_validate({"teacher": {"path": "bert"}, "data": {"train_file": "f"}, "method": method})


def test_a_spec_naming_another_top_k_value_is_refused() -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({**LM, "method": {"type": "gkd", "top_k": "full"}})


def test_the_signature_follows_the_teacher_outputs_not_the_schedule() -> None:
    base = JobSpec.model_validate({**LM, "method": {"type": "gkd"}})
    longer = JobSpec.model_validate({**LM, "method": {"type": "gkd"}, "training": {"epochs": 5}})
    exact = JobSpec.model_validate({**LM, "method": {"type": "gkd", "top_k": "exact"}})
    supervised = JobSpec.model_validate({**LM, "method": {"type": "supervised"}})

    assert teacher_outputs_signature(base) == teacher_outputs_signature(longer)
    assert teacher_outputs_signature(base) != teacher_outputs_signature(exact)
    assert teacher_outputs_signature(supervised) is None
