"""Side-by-side generations for the report: each model continues the same held-out prompts, greedily."""

import time

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.jobspec import ReportSpec
from distillery.jobspec.methods import SequenceLevelKD
from engine.data import causal_lm_prompts
from engine.lm.alignment import TokenAligner
from engine.lm.report import LanguageModels, synchronize
from engine.methods.response import generate_continuations


def _continuations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    settings: SequenceLevelKD,
    *,
    seed: int,
) -> tuple[list[str], float | None]:
    """Greedy continuations of the prompts as text, and the new tokens per second."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    synchronize(device)
    start = time.perf_counter()
    generated = generate_continuations(
        model,
        prompts,
        settings,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        batch_size=len(prompts),
        seed=seed,
    )
    synchronize(device)
    seconds = time.perf_counter() - start
    new_tokens = sum(len(tokens) for tokens in generated)
    # Decoded after its prompt, so a decoder that drops a leading space at the start of a text keeps it.
    texts = [
        tokenizer.decode(prompt + tokens, skip_special_tokens=True)[
            len(tokenizer.decode(prompt, skip_special_tokens=True)) :
        ]
        for prompt, tokens in zip(prompts, generated, strict=True)
    ]
    return texts, new_tokens / seconds if seconds > 0 else None


def _cut_where_aligned(
    prompts: list[list[int]], rows: datasets.Dataset, aligner: TokenAligner
) -> list[list[int]]:
    """Each prompt cut back to its last boundary both tokenizers share: no model starts mid-token."""
    examples = aligner.align([(list(ids), list(ids)) for ids in rows["input_ids"]])
    cut = []
    for prompt, example in zip(prompts, examples, strict=True):
        ends = [k for k, _ in example.pairs if k <= len(prompt)]
        cut.append(prompt[: max(ends)] if ends else prompt)
    return cut


def side_by_side(
    dataset: datasets.Dataset, models: LanguageModels, report: ReportSpec, *, seed: int
) -> tuple[list[dict[str, str]], dict[str, float | None]]:
    """Greedy continuations of the first held-out prompts by each model, and each one's generation rate."""
    if report.generations == 0:
        return [], {}
    rows = dataset.select(range(min(report.generations, len(dataset))))
    prompts = causal_lm_prompts(rows, report.prompt_tokens, models.tokenizer.eos_token_id)
    if models.aligner is not None:
        prompts = _cut_where_aligned(prompts, rows, models.aligner)
    prompt_texts = [models.tokenizer.decode(prompt, skip_special_tokens=True) for prompt in prompts]
    settings = SequenceLevelKD(max_new_tokens=report.max_new_tokens, do_sample=False)
    samples: list[dict[str, str]] = [{"prompt": text} for text in prompt_texts]
    rates: dict[str, float | None] = {}
    for name, model in models.named().items():
        tokenizer, model_prompts = models.tokenizer, prompts
        if name == "teacher" and models.aligner is not None and models.teacher_tokenizer is not None:
            tokenizer = models.teacher_tokenizer
            model_prompts = [
                tokenizer(text)["input_ids"] or [tokenizer.eos_token_id] for text in prompt_texts
            ]
        texts, rates[name] = _continuations(model, tokenizer, model_prompts, settings, seed=seed)
        for sample, text in zip(samples, texts, strict=True):
            sample[name] = text
    return samples, rates
