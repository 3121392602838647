"""Two tokenizations of the same text are paired where, and only where, both follow the same characters."""

import pytest
import torch
from bpe_models import EOS, byte_bpe
from tokenizers import processors

from engine.batching import IGNORE_INDEX
from engine.lm.alignment import Token, TokenAligner, target_boundaries

TEXTS = ["one two three four five", "six seven eight nine zero", "a dog ate my homework 🙂 really"] * 10


@pytest.fixture(scope="module")
def tokenizers():
    """A small student vocabulary that splits words, and a larger teacher one that starts with a BOS."""
    student = byte_bpe(TEXTS, 40)
    teacher = byte_bpe(TEXTS, 90)
    teacher.add_special_tokens({"bos_token": "<s>"})
    teacher.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", teacher.bos_token_id)]
    )
    for tokenizer in (student, teacher):
        tokenizer.pad_token = EOS
    return student, teacher


def encoded(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]


def test_paired_positions_predict_after_exactly_the_same_text(tokenizers):
    student, teacher = tokenizers
    assert len(student) != len(teacher)
    text = "a dog ate my homework 🙂 really"
    ids = encoded(student, text)
    (example,) = TokenAligner(student, teacher).align([(ids, list(ids))])
    assert example.teacher_ids[0] == teacher.bos_token_id and example.teacher_ids[-1] == teacher.eos_token_id
    assert example.pairs and example.targets == len(ids) - 1
    for k, m in example.pairs:
        before_student = student.decode(ids[:k], skip_special_tokens=True)
        before_teacher = teacher.decode(example.teacher_ids[:m], skip_special_tokens=True)
        assert before_student == before_teacher
    # The end-of-text token is predicted after the whole text on both sides.
    assert (len(ids) - 1, len(example.teacher_ids) - 1) in example.pairs
    # Every word start is a boundary both tokenizers share: each word after the first (which the student,
    # without a BOS, never predicts) and the end of text are compared.
    assert len(example.pairs) >= len(text.split())


def test_a_character_split_into_byte_pieces_is_compared_only_after_its_last_piece():
    # An emoji in two byte-level pieces: both carry the character's offsets, (4, 5).
    tokens = [
        Token("text", 0, 3),
        Token("text", 3, 4),
        Token("text", 4, 5),
        Token("text", 4, 5),
        Token("trail"),
    ]
    assert target_boundaries(tokens) == {3: 1, 4: 2, 5: 4}
    # Leading specials predict the first text token from the empty text; a second trailing special never
    # counts.
    assert target_boundaries([Token("lead"), Token("text", 0, 2), Token("trail"), Token("trail")]) == {
        0: 1,
        2: 2,
    }


def test_the_prompt_stays_out_of_the_pairs_and_of_the_teacher_labels(tokenizers):
    student, teacher = tokenizers
    prompt, completion = student("one two")["input_ids"], student(" three four")["input_ids"]
    ids = prompt + completion + [student.eos_token_id]
    labels = [IGNORE_INDEX] * len(prompt) + ids[len(prompt) :]
    (example,) = TokenAligner(student, teacher).align([(ids, labels)])
    assert all(k >= len(prompt) for k, _ in example.pairs)
    counted = [
        t for t, label in zip(example.teacher_ids, example.teacher_labels, strict=True) if label != -100
    ]
    assert teacher.decode(counted, skip_special_tokens=True) == " three four"
    assert counted[-1] == teacher.eos_token_id


def test_a_batch_indexes_both_models_logits_and_is_aligned_once_per_example(tokenizers):
    student, teacher = tokenizers
    rows = [encoded(student, "one two three"), encoded(student, "six seven")]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([row + [student.pad_token_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    labels = input_ids.masked_fill(mask == 0, IGNORE_INDEX)
    aligner = TokenAligner(student, teacher)
    view = aligner.batch(input_ids, mask, labels, torch.tensor([7, 9]))
    assert sorted(aligner.cache) == [7, 9]
    assert view.input_ids.shape == view.attention_mask.shape == view.labels.shape
    assert view.targets == int((labels[:, 1:] != IGNORE_INDEX).sum())
    assert 0 < view.aligned_fraction <= 1
    # Logits at position k - 1 predict target k: the target ids of each pair are the tokens that follow.
    for row, s_col, t_col in zip(
        view.student_rows.tolist(), view.student_columns.tolist(), view.teacher_columns.tolist(), strict=True
    ):
        s_next = student.decode(input_ids[row, s_col + 1 :].tolist(), skip_special_tokens=True)
        t_next = teacher.decode(view.input_ids[row, t_col + 1 :].tolist(), skip_special_tokens=True)
        assert s_next == t_next
    again = aligner.batch(input_ids, mask, labels, torch.tensor([7, 9]))
    assert torch.equal(again.teacher_columns, view.teacher_columns)


def test_with_one_tokenizer_every_target_pairs_with_itself(tokenizers):
    student, _ = tokenizers
    ids = encoded(student, "a dog ate my homework 🙂 really")
    (example,) = TokenAligner(student, student).align([(ids, list(ids))])
    assert example.teacher_ids == ids
    assert all(k == m for k, m in example.pairs)
    # Only the emoji's byte pieces after its first start inside a character, so only they are left out.
    unpaired = [k for k in range(1, len(ids)) if (k, k) not in example.pairs]
    emoji = [k for k in range(len(ids)) if "\ufffd" in student.decode([ids[k]])]
    assert len(emoji) > 1 and unpaired == emoji[1:]
