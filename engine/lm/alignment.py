"""Two tokenizations of one text, aligned by character: the positions of each that follow the same text.

A causal LM's logits at position k-1 predict token k from the text before it. When the student's and
the teacher's tokenizers differ, a student position and a teacher position are comparable when their
contexts cover exactly the same characters: both tokenizations have a token boundary there. The
student's example is decoded to text, encoded again by both fast tokenizers with character offsets
(the student's must give back its own ids), and each side's boundaries are matched by character.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from transformers import BatchEncoding, PreTrainedTokenizerBase

from engine.batching import IGNORE_INDEX
from engine.errors import UserError

Kind = Literal["lead", "text", "trail"]


@dataclass(frozen=True)
class Token:
    """One token of a tokenization: special at the start or end of the example, or a span of its text."""

    kind: Kind
    start: int = 0
    end: int = 0


@dataclass(frozen=True)
class AlignedExample:
    """The teacher's tokens for one student example and the (student, teacher) target indices that pair."""

    teacher_ids: list[int]
    teacher_labels: list[int]
    pairs: list[tuple[int, int]]
    targets: int


@dataclass
class TeacherBatch:
    """A batch in the teacher's tokens, and where the two models' logits predict after the same text.

    `student_rows`/`student_columns` and `teacher_rows`/`teacher_columns` index the logits of the two
    models ([B, L, V]) at aligned positions, pair by pair; `targets` counts the student's target tokens.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    student_rows: Tensor
    student_columns: Tensor
    teacher_rows: Tensor
    teacher_columns: Tensor
    targets: int

    @property
    def aligned_fraction(self) -> float:
        """Share of the student's target tokens paired with a teacher position."""
        return len(self.student_rows) / self.targets if self.targets else 0.0


def target_boundaries(tokens: Sequence[Token]) -> dict[int, int]:
    """{character: index k of the token predicted after exactly the text up to that character}.

    A target counts when the text before it ends cleanly: its context's last text token has a width
    and the target starts at or after that token's end (byte-level pieces of one character share their
    character's offsets, so only the last piece ends cleanly). Targets that are leading special tokens,
    or follow a trailing one, never count; a boundary found twice counts neither time.
    """
    found: dict[int, int] = {}
    repeated: set[int] = set()
    consumed, clean = 0, True
    for k in range(1, len(tokens)):
        previous, token = tokens[k - 1], tokens[k]
        if previous.kind == "text":
            consumed, clean = previous.end, previous.end > previous.start
        if token.kind == "lead" or previous.kind == "trail" or not clean:
            continue
        if token.kind == "text" and token.start < consumed:
            continue
        if consumed in found:
            repeated.add(consumed)
        found[consumed] = k
    return {boundary: k for boundary, k in found.items() if boundary not in repeated}


def _special_ends(ids: list[int], special: set[int]) -> tuple[int, int]:
    """How many special tokens the example starts and ends with."""
    lead = next((i for i, token in enumerate(ids) if token not in special), len(ids))
    trail = next((i for i, token in enumerate(reversed(ids)) if token not in special), len(ids))
    return lead, min(trail, len(ids) - lead)


class TokenAligner:
    """Re-tokenizes the student's examples for the teacher and pairs the positions that follow the same text.

    Results are kept by example index, so an example is aligned once however many epochs see it.
    """

    def __init__(
        self,
        student: PreTrainedTokenizerBase,
        teacher: PreTrainedTokenizerBase,
        *,
        teacher_max_length: int | None = None,
    ) -> None:
        for side, tokenizer in (("student", student), ("teacher", teacher)):
            if not tokenizer.is_fast:
                raise UserError(
                    f"cross_tokenizer needs fast tokenizers (character offsets); the {side}'s "
                    f"({type(tokenizer).__name__}) is not one",
                    code="incompatible_model",
                    param="method.cross_tokenizer",
                )
        self.student, self.teacher = student, teacher
        self.teacher_max_length = teacher_max_length
        self.special = set(student.all_special_ids)
        self.teacher_pad = teacher.pad_token_id if teacher.pad_token_id is not None else 0
        self.cache: dict[int, AlignedExample] = {}

    def align(self, examples: Sequence[tuple[list[int], list[int]]]) -> list[AlignedExample]:
        """Each (student ids, labels) example in the teacher's tokens, with its aligned target pairs."""
        if not examples:
            return []
        cuts = [_special_ends(ids, self.special) for ids, _ in examples]
        inner = [ids[lead : len(ids) - trail] for (ids, _), (lead, trail) in zip(examples, cuts, strict=True)]
        texts = [
            self.student.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            for ids in inner
        ]
        again = self.student(texts, add_special_tokens=False, return_offsets_mapping=True)
        teacher = self.teacher(texts, add_special_tokens=True, return_offsets_mapping=True)
        aligned = []
        for row, (_, labels) in enumerate(examples):
            lead, trail = cuts[row]
            student_tokens: list[Token] = []
            # Decoding that does not give back the same tokens leaves nothing of the example to compare.
            if again["input_ids"][row] == inner[row]:
                spans = [Token("text", start, end) for start, end in again["offset_mapping"][row]]
                student_tokens = [Token("lead")] * lead + spans + [Token("trail")] * trail
            teacher_ids, teacher_tokens = self._teacher_tokens(teacher, row, ends_with_eos=trail > 0)
            aligned.append(_aligned(labels, student_tokens, teacher_ids, teacher_tokens))
        return aligned

    def _teacher_tokens(
        self, encoded: BatchEncoding, row: int, *, ends_with_eos: bool
    ) -> tuple[list[int], list[Token]]:
        """The teacher's ids for one text: its own special tokens, and an EOS where the student has one."""
        ids = list(encoded["input_ids"][row])
        parts = encoded.sequence_ids(row)
        first_text = next((i for i, part in enumerate(parts) if part is not None), len(parts))
        tokens = [
            Token("text", start, end) if part is not None else Token("lead" if i < first_text else "trail")
            for i, (part, (start, end)) in enumerate(zip(parts, encoded["offset_mapping"][row], strict=True))
        ]
        eos = self.teacher.eos_token_id
        if ends_with_eos and eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
            tokens.append(Token("trail"))
        if self.teacher_max_length is not None:
            ids, tokens = ids[: self.teacher_max_length], tokens[: self.teacher_max_length]
        return ids, tokens

    def batch(
        self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor, indices: Tensor | None = None
    ) -> TeacherBatch:
        """A right-padded student batch in the teacher's tokens, with its aligned positions."""
        lengths = attention_mask.sum(dim=1).tolist()
        rows = [
            (ids[:length], row_labels[:length])
            for ids, row_labels, length in zip(input_ids.tolist(), labels.tolist(), lengths, strict=True)
        ]
        keys = indices.tolist() if indices is not None else [None] * len(rows)
        missing = [i for i, key in enumerate(keys) if key is None or key not in self.cache]
        fresh = dict(zip(missing, self.align([rows[i] for i in missing]), strict=True))
        examples = []
        for i, key in enumerate(keys):
            example = fresh[i] if i in fresh else self.cache[key]
            if key is not None:
                self.cache[key] = example
            examples.append(example)
        return self._collate(examples, device=input_ids.device)

    def _collate(self, examples: list[AlignedExample], *, device: torch.device) -> TeacherBatch:
        width = max([1, *(len(example.teacher_ids) for example in examples)])
        ids = torch.full((len(examples), width), self.teacher_pad, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            length = len(example.teacher_ids)
            ids[row, :length] = torch.tensor(example.teacher_ids, dtype=torch.long)
            mask[row, :length] = 1
            labels[row, :length] = torch.tensor(example.teacher_labels, dtype=torch.long)
        # Logits at k - 1 predict target k.
        pairs = [(row, k - 1, m - 1) for row, example in enumerate(examples) for k, m in example.pairs]
        index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 3).to(device)
        return TeacherBatch(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            labels=labels.to(device),
            student_rows=index[:, 0],
            student_columns=index[:, 1],
            teacher_rows=index[:, 0],
            teacher_columns=index[:, 2],
            targets=sum(example.targets for example in examples),
        )


def _aligned(
    labels: list[int], student_tokens: list[Token], teacher_ids: list[int], teacher_tokens: list[Token]
) -> AlignedExample:
    """The pairs of student and teacher targets that follow the same text, and the teacher's labels.

    The teacher's labels cover the text from where the student's first counted target starts (its
    prompt stays out), and its end-of-text token when the student's counts.
    """
    student_boundaries = target_boundaries(student_tokens)
    teacher_boundaries = target_boundaries(teacher_tokens)
    pairs = sorted(
        (k, teacher_boundaries[boundary])
        for boundary, k in student_boundaries.items()
        if boundary in teacher_boundaries and labels[k] != IGNORE_INDEX
    )
    counted = [k for k in range(1, len(labels)) if labels[k] != IGNORE_INDEX]
    first = next((student_tokens[k] for k in counted if k < len(student_tokens)), None)
    text_from = first.start if first is not None and first.kind == "text" else 0
    if first is not None and first.kind == "trail":
        text_from = max((t.end for t in student_tokens if t.kind == "text"), default=0)
    eos_counts = (
        bool(counted)
        and counted[-1] == len(labels) - 1
        and bool(student_tokens)
        and (student_tokens[-1].kind == "trail")
    )
    teacher_labels = [
        token_id
        if index > 0
        and ((token.kind == "text" and token.start >= text_from) or (token.kind == "trail" and eos_counts))
        else IGNORE_INDEX
        for index, (token_id, token) in enumerate(zip(teacher_ids, teacher_tokens, strict=True))
    ]
    return AlignedExample(teacher_ids, teacher_labels, pairs, len(counted))
