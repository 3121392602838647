"""Reading a job or sweep spec from YAML (or JSON) and applying `--set key.path=value` overrides."""

from pathlib import Path
from typing import Any

import yaml

from distillery.cli.state import CliError

# A model reference's two ways to name a model, each with the one it excludes.
MODEL_REF_KEYS = {"path": "job", "job": "path"}


def load_spec(
    path: Path,
    overrides: list[str] | None = None,
    describes: str = "task, teacher, student, data, method, training",
) -> dict[str, Any]:
    """The spec in a YAML file, with each 'key.path=value' override applied in order.

    `describes` names the spec's top-level keys, for the message when the file holds no mapping.
    """
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise CliError(f"{path} must hold a mapping ({describes})")
    for override in overrides or []:
        key_path, value = parse_override(override)
        set_path(spec, key_path, value)
    return spec


def parse_override(override: str) -> tuple[list[str], Any]:
    """'training.epochs=3' as (['training', 'epochs'], 3); the value is read as YAML."""
    key, sep, raw = override.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(part.strip() for part in keys):
        raise CliError(f"--set expects key.path=value, got {override!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise CliError(f"--set {key}: the value {raw!r} is not valid YAML") from exc
    return [part.strip() for part in keys], value


def set_path(spec: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set spec[k1][k2]...[kn] = value, creating mappings on the way; list items by index."""
    node: Any = spec
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, key, where)
            if last:
                node[index] = value
                return
            node = node[index]
            continue
        if not isinstance(node, dict):
            parent = ".".join(keys[:depth])
            raise CliError(f"--set {'.'.join(keys)}: {parent} is a value, not a mapping")
        if last:
            node[key] = value
            if key in MODEL_REF_KEYS:  # a model is named by one of them: the new one replaces the other
                node.pop(MODEL_REF_KEYS[key], None)
            return
        if node.get(key) is None:
            node[key] = {}
        node = node[key]


def _list_index(items: list[Any], key: str, where: str) -> int:
    try:
        index = int(key)
    except ValueError:
        raise CliError(f"--set {where}: a list is indexed by a number, got {key!r}") from None
    if not -len(items) <= index < len(items):
        raise CliError(f"--set {where}: index {index} is outside the list of {len(items)}")
    return index
