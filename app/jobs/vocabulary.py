"""A model directory's token vocabulary, read from its tokenizer files without loading a tokenizer.

The API refuses, before queueing, a job whose teacher would have to read tokens its vocabulary does not
have. Only the files' base vocabulary is compared (token -> id); a directory whose files are missing or
unreadable is left to the worker, which loads both tokenizers and checks again.
"""

import json
from pathlib import Path

# A tokenizer file past this size is not read by the API; the worker still checks the pair.
MAX_TOKENIZER_FILE_BYTES = 64 * 2**20


def _read_json(path: Path) -> object | None:
    if not path.is_file() or path.stat().st_size > MAX_TOKENIZER_FILE_BYTES:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _from_tokenizer_json(document: object) -> dict[str, int] | None:
    """The `model.vocab` of a tokenizers file: a mapping (BPE, WordPiece, WordLevel) or a list (Unigram)."""
    model = document.get("model") if isinstance(document, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if isinstance(vocab, dict):
        return {str(token): index for token, index in vocab.items() if isinstance(index, int)}
    if isinstance(vocab, list):
        return {
            str(entry[0]): index for index, entry in enumerate(vocab) if isinstance(entry, list) and entry
        }
    return None


def read_vocabulary(directory: Path) -> dict[str, int] | None:
    """token -> id from tokenizer.json, vocab.json or vocab.txt; None when none can be read."""
    vocabulary = _from_tokenizer_json(_read_json(directory / "tokenizer.json"))
    if vocabulary is not None:
        return vocabulary
    document = _read_json(directory / "vocab.json")
    if isinstance(document, dict):
        return {str(token): index for token, index in document.items() if isinstance(index, int)}
    text_file = directory / "vocab.txt"
    if text_file.is_file() and text_file.stat().st_size <= MAX_TOKENIZER_FILE_BYTES:
        try:
            lines = text_file.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError):
            return None
        return {token: index for index, token in enumerate(lines)}
    return None


def vocabulary_mismatch(teacher_dir: Path, student_dir: Path) -> tuple[int, int] | None:
    """(teacher size, student size) when both vocabularies can be read and differ, else None."""
    if teacher_dir.resolve() == student_dir.resolve():
        return None
    teacher, student = read_vocabulary(teacher_dir), read_vocabulary(student_dir)
    if teacher is None or student is None or teacher == student:
        return None
    return len(teacher), len(student)
