"""Which saved architectures fit a task: a model's config names its head (`BertForSequenceClassification`)."""

TASK_ARCHITECTURE_SUFFIXES = {
    "sequence_classification": ("ForSequenceClassification",),
    "causal_lm": ("ForCausalLM", "LMHeadModel"),
}


def fits_task(architectures: list[str] | None, task: str) -> bool:
    """Whether a config's `architectures` has a head for `task`; a config that names none may fit."""
    return not architectures or any(name.endswith(TASK_ARCHITECTURE_SUFFIXES[task]) for name in architectures)
