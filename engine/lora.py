"""LoRA students (Hu et al. 2021) through peft: adapters injected into the student, merged or kept on save.

peft injects the adapters into the model's own modules, so the student stays the transformers model it
was (methods that hook its layers or read its config see no wrapper). The peft wrapper, needed to merge
or save the adapters, is kept on the model as a plain attribute, outside its submodules and state dict.
"""

import copy
import logging
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from distillery.jobspec import LoraSpec
from distillery.jobspec.lora import ALL_LINEAR
from engine.errors import UserError

logger = logging.getLogger(__name__)

PARAM = "student.lora.target_modules"
WRAPPER = "_lora_wrapper"
# Where a student saved with `merge: false` keeps its adapter, beside its base weights.
ADAPTER_DIR = "adapter"
ADAPTABLE = (nn.Linear, Conv1D, nn.Embedding, nn.Conv1d, nn.Conv2d)


def adaptable_names(model: nn.Module) -> list[str]:
    """The last name parts of the modules peft can adapt (linear, convolution, embedding), sorted."""
    names = {name.split(".")[-1] for name, module in model.named_modules() if isinstance(module, ADAPTABLE)}
    return sorted(names)


def unmatched_targets(model: nn.Module, targets: list[str]) -> list[str]:
    """The target names that end no module's dotted name."""
    names = [name for name, _ in model.named_modules() if name]
    return [target for target in targets if not any(name.endswith("." + target) for name in ["", *names])]


def add_lora(model: PreTrainedModel, spec: LoraSpec | None, task: str) -> PreTrainedModel:
    """The model with LoRA adapters on the spec's modules, every other weight frozen; as is without a spec.

    A target that names no module, or one peft cannot adapt, is a UserError on `student.lora.target_modules`.
    """
    if spec is None:
        return model
    from peft import LoraConfig, TaskType, get_peft_model  # imported here: slow, and only LoRA jobs need it

    targets: Any = spec.target_modules
    if targets == [ALL_LINEAR]:
        targets = ALL_LINEAR
    elif targets is not None:
        missing = unmatched_targets(model, targets)
        if missing:
            raise UserError(
                f"no module of the {type(model).__name__} is named {', '.join(map(repr, missing))}; "
                f"modules it can adapt: {', '.join(adaptable_names(model))}",
                param=PARAM,
            )
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
        task_type=TaskType.CAUSAL_LM if task == "causal_lm" else TaskType.SEQ_CLS,
    )
    try:
        wrapper = get_peft_model(model, config)
    except ValueError as error:  # no default targets for the architecture, or a module peft cannot adapt
        raise UserError(f"cannot add LoRA adapters: {error}", param=PARAM) from error
    object.__setattr__(model, WRAPPER, wrapper)  # not a submodule: state_dict and parameters stay the model's
    return model


def parameter_counts(module: nn.Module) -> dict[str, int]:
    """Parameters in total and those that train (each shared tensor counted once)."""
    unique = {id(param): param for param in module.parameters()}.values()
    return {
        "total": sum(param.numel() for param in unique),
        "trainable": sum(param.numel() for param in unique if param.requires_grad),
    }


def save_student(model: PreTrainedModel, spec: LoraSpec | None, directory: Path) -> PreTrainedModel:
    """Save the student with save_pretrained; returns the model as saved, to evaluate and report.

    A LoRA student is merged into plain weights by default. With `merge: false` the directory holds the
    base weights and the adapter in `adapter/` (peft's adapter_config.json and adapter_model.safetensors):
    PeftModel.from_pretrained(AutoModel...from_pretrained(directory), directory / "adapter"). In a folder
    of its own, the adapter is not picked up (or refused, by peft versions transformers does not support)
    when the base alone is loaded.
    """
    wrapper = getattr(model, WRAPPER, None)
    if spec is None or wrapper is None:
        model.save_pretrained(directory)
        return model
    if spec.merge:
        merged: PreTrainedModel = wrapper.merge_and_unload()
        merged.__dict__.pop(WRAPPER, None)
        merged.save_pretrained(directory)
        return merged
    base: PreTrainedModel = copy.deepcopy(wrapper).unload()
    base.__dict__.pop(WRAPPER, None)
    base.save_pretrained(directory)
    # The base sits in the parent directory; the worker's own path of it means nothing to whoever loads it.
    wrapper.peft_config["default"].base_model_name_or_path = None
    wrapper.save_pretrained(directory / ADAPTER_DIR)
    return model


def with_saved_adapter(model: PreTrainedModel, directory: Path) -> PreTrainedModel:
    """A model loaded from a directory saved with `merge: false`, its adapter merged; as is without one."""
    adapter = directory / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        return model
    from peft import PeftModel

    merged: PreTrainedModel = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    logger.info("merged the LoRA adapter saved with model %s", directory.name)
    return merged
