"""The models under the service's roots, so that a missing model's error shows what could be named."""

from pathlib import Path

from app.core.config import Settings

MODEL_CONFIG = "config.json"
MAX_LISTED = 20
# Models sit a few folders down at most (`teachers/minilm-sentiment`); deeper trees are not walked.
MAX_DEPTH = 3


def models_under(root: Path, *, limit: int = MAX_LISTED) -> list[str]:
    """The model folders (with a config.json) under a local root, sorted; `limit` at most."""
    found: list[str] = []
    pending = [(root, 0)]
    while pending and len(found) < limit:
        folder, depth = pending.pop(0)
        if folder != root and (folder / MODEL_CONFIG).is_file():
            found.append(folder.relative_to(root).as_posix())
            continue
        if depth >= MAX_DEPTH:
            continue
        try:
            children = sorted(child for child in folder.iterdir() if child.is_dir())
        except OSError:
            continue
        pending.extend((child, depth + 1) for child in children if not child.name.startswith("."))
    return sorted(found)


def where_models_are(settings: Settings) -> str:
    """One sentence naming the model roots and the models found in the local ones."""
    roots = settings.model_roots
    names = ", ".join(str(root) for root in roots) or "none configured (DISTILLERY_MODEL_ROOTS)"
    models = sorted({model for root in roots if isinstance(root, Path) for model in models_under(root)})
    if not models:
        return f"model roots: {names}; no model folders found there"
    shown = ", ".join(models[:MAX_LISTED]) + (", ..." if len(models) > MAX_LISTED else "")
    return f"model roots: {names}; models found there: {shown}"
