"""`student.lora`: train low-rank adapters on a frozen student (LoRA, Hu et al. 2021) through `peft`."""

from typing import Annotated, Self

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from distillery.jobspec.methods import StrictModel

ALL_LINEAR = "all-linear"
# A module name as transformers spells it: a dotted path of identifiers, matched as a suffix.
ModuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class LoraSpec(StrictModel):
    """Adapters of rank r on the named modules; every other weight of the student stays frozen.

    Each adapter adds (alpha / r) * B A x to its module's output, B initialised to zero, so training
    starts from the student as built.
    """

    r: int = Field(8, ge=1, le=1024, description="Rank of each adapter.")
    alpha: int = Field(16, ge=1, le=100_000, description="Scale: adapters' outputs are times alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input while training.")
    target_modules: list[ModuleName] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Names of the modules to adapt, each matched as the last parts of a module's name (e.g. "
        'q_proj, v_proj; c_attn for GPT-2; query, value for BERT), or ["all-linear"] for every linear '
        "layer but the output head. Default: peft's choice for the architecture.",
    )
    merge: bool = Field(
        True,
        description="true: the saved student has the adapters merged into its weights (a plain model). "
        "false: it keeps them apart: the base model's weights, and the adapter in its folder adapter/ "
        "(load with peft: PeftModel.from_pretrained(base, 'student/adapter')). A later job that uses this "
        "student merges the adapter when it loads it.",
    )

    @model_validator(mode="after")
    def _all_linear_alone(self) -> Self:
        modules = self.target_modules or []
        if ALL_LINEAR in modules and len(modules) > 1:
            raise PydanticCustomError("param:target_modules", f"'{ALL_LINEAR}' stands alone in the list")
        return self
