"""Teacher and student models: safe loading, the three ways to build a student, and compatibility checks."""

import copy
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from distillery.jobspec import StudentSpec
from distillery.jobspec.architectures import fits_task
from engine.data import has_real_label_names
from engine.errors import UserError
from engine.lora import add_lora, with_saved_adapter

logger = logging.getLogger(__name__)
CONFIG_PARAM = "student.config"
# A student is the small model; one built from a config past this size is a mistake, not a distillation.
MAX_CONFIG_STUDENT_PARAMETERS = 2_000_000_000

# Where architectures keep their stack of transformer blocks (BERT-like, DistilBERT, GPT-2, Llama-like).
LAYER_LIST_SUFFIXES = (
    "encoder.layer",
    "transformer.layer",
    "transformer.h",
    "model.layers",
    "decoder.layers",
)


def auto_model_class(task: str) -> Any:
    """The Auto class that builds a model with the head this task needs."""
    return AutoModelForSequenceClassification if task == "sequence_classification" else AutoModelForCausalLM


def attention_kwargs(eager: bool) -> dict[str, str]:
    """Eager attention where a method reads attention maps (sdpa returns none)."""
    return {"attn_implementation": "eager"} if eager else {}


def label_kwargs(label2id: dict[str, int] | None) -> dict[str, Any]:
    """Config fields that give a classifier the data's labels."""
    if label2id is None:
        return {}
    id2label = {index: name for name, index in label2id.items()}
    return {"num_labels": len(label2id), "label2id": dict(label2id), "id2label": id2label}


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a model; decoders without a pad token pad with EOS."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise UserError(
            f"no usable tokenizer in model {path.name!r}: {error}", code="invalid_model"
        ) from error
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_config(path: Path, *, param: str) -> PretrainedConfig:
    """A model directory's config.json (never code from it: a type transformers lacks is a UserError)."""
    refuse_custom_code(path, param=param)
    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise UserError(
            f"cannot read the config of model {path.name!r}: {error}", code="invalid_model", param=param
        ) from error


def refuse_custom_code(path: Path, *, param: str) -> None:
    """Refuse a model whose type only its own code (`auto_map`) defines, before transformers reads it.

    A known type that also ships code (older Qwen checkpoints do) loads with transformers' own class.
    """
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return  # AutoConfig says what is wrong with a missing or broken config
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if isinstance(config, dict) and config.get("auto_map") and model_type not in CONFIG_MAPPING:
        raise UserError(
            f"model {path.name!r} is of type {model_type!r}, which only its own code defines (auto_map); "
            "custom model code is never run: use a model whose type transformers knows",
            code="invalid_model",
            param=param,
        )


def check_task(config: PretrainedConfig, task: str, *, param: str) -> None:
    """Reject a checkpoint whose saved head is for another task (e.g. a classifier as an LM teacher)."""
    architectures = config.architectures or []
    if not fits_task(architectures, task):
        raise UserError(
            f"model is a {', '.join(architectures)}, which does not fit task {task!r}: a teacher needs a "
            "head for the task (fine-tune a base model first with a job of method supervised)",
            code="incompatible_model",
            param=param,
        )


def _from_pretrained(task: str, path: Path, *, param: str, **kwargs: Any) -> PreTrainedModel:
    refuse_custom_code(path, param=param)
    try:
        model = auto_model_class(task).from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False, **kwargs
        )
        return with_saved_adapter(model, path)
    except (OSError, ValueError) as error:
        raise UserError(
            f"cannot load model {path.name!r} for {task}: {error}", code="invalid_model", param=param
        ) from error


def load_teacher(path: Path, task: str, *, eager: bool, device: torch.device | str) -> PreTrainedModel:
    """The teacher from safetensors, frozen, in eval mode, on the device."""
    check_task(load_config(path, param="teacher"), task, param="teacher")
    teacher = _from_pretrained(task, path, param="teacher", **attention_kwargs(eager))
    teacher.requires_grad_(False)
    return teacher.eval().to(device)


def build_student(
    spec: StudentSpec,
    task: str,
    *,
    base_dir: Path,
    label2id: dict[str, int] | None,
    seed: int,
    eager: bool,
) -> PreTrainedModel:
    """The student as `spec.init` says: pretrained, from a config, or from chosen layers of `base_dir`."""
    base_param = "student.model" if spec.model is not None else "teacher"
    extra = {**attention_kwargs(eager), **label_kwargs(label2id)}
    torch.manual_seed(seed)  # new heads and random inits depend on the seed only
    if spec.init == "pretrained":
        return _from_pretrained(task, base_dir, param=base_param, ignore_mismatched_sizes=True, **extra)
    config = load_config(base_dir, param=base_param)
    if spec.init == "config":
        config = buildable_config(config, spec.config or {}, task=task, eager=eager, label2id=label2id)
        return auto_model_class(task).from_config(config, **attention_kwargs(eager))
    source = _from_pretrained(task, base_dir, param=base_param, ignore_mismatched_sizes=True, **extra)
    return student_from_layers(source, spec.layers, task=task, eager=eager, seed=seed)


def apply_overrides(
    config: PretrainedConfig, overrides: dict[str, Any], *, label2id: dict[str, int] | None = None
) -> PretrainedConfig:
    """A copy of the config with the overrides and the data's labels; a key it refuses is a UserError."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        param = f"{CONFIG_PARAM}.{key}"
        if not hasattr(config, key):
            raise UserError(f"{type(config).__name__} has no field {key!r}", param=param)
        try:
            setattr(config, key, value)  # transformers' config classes check the types of known fields
        except Exception as error:
            raise UserError(f"invalid student config field {key!r}: {error}", param=param) from error
    for key, value in label_kwargs(label2id).items():
        setattr(config, key, value)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and "layer_types" not in overrides:
        config.layer_types = spread_layer_types(layer_types, int(config.num_hidden_layers))
    return config


def spread_layer_types(layer_types: list[str], count: int) -> list[str]:
    """Per-layer attention kinds (full, sliding) for `count` layers, taken from layers spread evenly.

    A config of another depth keeps the base's mix of kinds, the last layer's kind last.
    """
    if count == len(layer_types) or not layer_types or count < 1:
        return list(layer_types)
    if count == 1:
        return [layer_types[-1]]
    last = len(layer_types) - 1
    return [layer_types[round(i * last / (count - 1))] for i in range(count)]


def buildable_config(
    base: PretrainedConfig,
    overrides: dict[str, Any],
    *,
    task: str,
    eager: bool,
    label2id: dict[str, int] | None,
) -> PretrainedConfig:
    """The base config with the overrides, once a model builds from it; a config it refuses is a UserError.

    The model is built on the meta device (no memory, no weights). Constructors reject a config with
    whatever exception their arithmetic hits (a zero head count divides by zero, a negative width makes
    a negative shape), so any exception here is the config's fault. The field named is the first
    override whose addition makes the build fail.
    """
    config = apply_overrides(base, overrides, label2id=label2id)
    try:
        model = _build_on_meta(config, task=task, eager=eager)
    except Exception as error:
        key = _first_failing_override(base, overrides, task=task, eager=eager, label2id=label2id)
        param = f"{CONFIG_PARAM}.{key}" if key is not None else CONFIG_PARAM
        message = f"the student config cannot build a model: {type(error).__name__}: {error}"
        raise UserError(message, param=param) from error
    parameters = count_parameters(model)["total"]
    if parameters > MAX_CONFIG_STUDENT_PARAMETERS:
        raise UserError(
            f"the student config builds {parameters:,} parameters; the limit is "
            f"{MAX_CONFIG_STUDENT_PARAMETERS:,}",
            code="student_too_large",
            param=CONFIG_PARAM,
        )
    return config


def _build_on_meta(config: PretrainedConfig, *, task: str, eager: bool) -> PreTrainedModel:
    with torch.device("meta"):
        model: PreTrainedModel = auto_model_class(task).from_config(config, **attention_kwargs(eager))
        return model


def _first_failing_override(
    base: PretrainedConfig,
    overrides: dict[str, Any],
    *,
    task: str,
    eager: bool,
    label2id: dict[str, int] | None,
) -> str | None:
    """The first override, in the order given, whose addition makes the build fail."""
    applied: dict[str, Any] = {}
    for key, value in overrides.items():
        applied[key] = value
        try:
            _build_on_meta(apply_overrides(base, applied, label2id=label2id), task=task, eager=eager)
        except Exception:
            return key
    return None


def default_layers(num_layers: int) -> list[int]:
    """Every other layer, ending with the last one (which feeds the head)."""
    return list(range(num_layers - 1, -1, -2))[::-1]


def find_layer_list(model: nn.Module) -> str:
    """Dotted name of the model's stack of transformer blocks, e.g. `bert.encoder.layer`."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (
            name.endswith(LAYER_LIST_SUFFIXES) or name.split(".")[-1] == "h"
        ):
            return name
    raise UserError(
        f"cannot copy layers of a {type(model).__name__}: its layer stack is not a known one",
        code="incompatible_model",
        param="student.layers",
    )


def student_from_layers(
    source: PreTrainedModel, layers: list[int] | None, *, task: str, eager: bool, seed: int
) -> PreTrainedModel:
    """A shallower copy of `source` keeping the chosen layers (DistilBERT, Sanh et al. 2019).

    Embeddings, the chosen blocks (renumbered 0..k-1) and the head are copied; anything whose shape
    differs (a head for other labels) keeps its seeded random init.
    """
    source_stack = find_layer_list(source)
    num_layers = len(source.get_submodule(source_stack))
    layers = default_layers(num_layers) if layers is None else list(layers)
    bad = [index for index in layers if not 0 <= index < num_layers]
    if bad:
        raise UserError(
            f"layer indices {bad} are out of range: the model has {num_layers} layers (0-based)",
            param="student.layers",
        )
    config = copy.deepcopy(source.config)
    config.num_hidden_layers = len(layers)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[index] for index in layers]
    torch.manual_seed(seed)
    student = auto_model_class(task).from_config(config, **attention_kwargs(eager))
    source_state = source.state_dict()
    block = re.compile(rf"^{re.escape(source_stack)}\.(\d+)\.")
    state = student.state_dict()
    copied = 0
    for key, value in state.items():
        source_key = block.sub(lambda match: f"{source_stack}.{layers[int(match.group(1))]}.", key)
        if source_key in source_state and source_state[source_key].shape == value.shape:
            state[key] = source_state[source_key]
            copied += 1
    student.load_state_dict(state)
    logger.info("student: copied layers %s (%d of %d tensors) from the source", layers, copied, len(state))
    return student


def check_compatibility(
    *,
    task: str,
    teacher: PreTrainedModel,
    teacher_tokenizer: PreTrainedTokenizerBase,
    student_tokenizer: PreTrainedTokenizerBase,
    label2id: dict[str, int] | None,
    cross_tokenizer: bool = False,
) -> None:
    """Raise a UserError if the teacher cannot teach this student on this data.

    Different vocabularies are refused unless the method distils across tokenizers (`cross_tokenizer`).
    """
    if not cross_tokenizer and teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        advice = " (or, for a causal LM, set method.cross_tokenizer: uld)" if task == "causal_lm" else ""
        raise UserError(
            f"the student's tokenizer ({_vocabulary_name(student_tokenizer)}, {len(student_tokenizer):,} "
            f"tokens) differs from the teacher's ({_vocabulary_name(teacher_tokenizer)}, "
            f"{len(teacher_tokenizer):,} tokens); the teacher must read the same tokens{advice}",
            code="incompatible_model",
            param="student.model",
        )
    if task != "sequence_classification" or label2id is None:
        return
    id2label = {int(index): str(name) for index, name in (teacher.config.id2label or {}).items()}
    data_labels = sorted(label2id)
    if teacher.config.num_labels != len(label2id):
        raise UserError(
            f"the teacher has {teacher.config.num_labels} labels, the data {len(label2id)}: {data_labels}",
            code="incompatible_model",
            param="teacher",
        )
    if has_real_label_names(id2label) and {name: index for index, name in id2label.items()} != label2id:
        raise UserError(
            f"the teacher's labels {sorted(id2label.values())} differ from the data's {data_labels}",
            code="incompatible_model",
            param="teacher",
        )


def _vocabulary_name(tokenizer: PreTrainedTokenizerBase) -> str:
    """The model directory a tokenizer was loaded from, by name, and its kind."""
    name = Path(str(tokenizer.name_or_path)).name if tokenizer.name_or_path else "unnamed"
    return f"{type(tokenizer).__name__} of {name!r}"


def student_factory(
    spec: StudentSpec,
    task: str,
    *,
    base_dir: Path,
    label2id: dict[str, int] | None,
    eager: bool,
    device: torch.device | str,
) -> Callable[[int], PreTrainedModel]:
    """`new_student(seed)`: another student built as the spec says, on the device."""

    def new_student(seed: int) -> PreTrainedModel:
        model = build_student(spec, task, base_dir=base_dir, label2id=label2id, seed=seed, eager=eager)
        return add_lora(model, spec.lora, task).to(device)

    return new_student


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters in total and without embedding tables (tied weights counted once)."""
    unique = {id(p): p for p in model.parameters()}
    embedding = {
        id(p) for module in model.modules() if isinstance(module, nn.Embedding) for p in module.parameters()
    }
    total = sum(p.numel() for p in unique.values())
    return {
        "total": total,
        "without_embeddings": total - sum(unique[i].numel() for i in embedding if i in unique),
    }
