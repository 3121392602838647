"""Distillation methods: each one a `type` and its own validated parameters."""

from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

DISCRIMINATOR = "type"
Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
CrossTokenizer = Literal["uld"]
Task = Literal["sequence_classification", "causal_lm"]
CLASSIFICATION: frozenset[Task] = frozenset({"sequence_classification"})
CAUSAL_LM: frozenset[Task] = frozenset({"causal_lm"})
EVERY_TASK: frozenset[Task] = frozenset(get_args(Task))
# Depths and layer indices: no supported model comes near this many layers.
MAX_DEPTH = 256
Depth = Annotated[int, Field(ge=0, le=MAX_DEPTH)]
LayerPair = tuple[Depth, Depth]
# A causal LM's token-level KD matches the teacher's k most likely tokens unless the spec asks for the
# exact loss: 6k + 2 = 1,538 bytes per stored token, against 2V (8,192 at a 4,096-token vocabulary,
# 303,872 at Qwen2's). k = 64 covered 37% of a weak teacher's mass and cost 18% in perplexity against
# the exact loss in bench.lm.vs_trl; k = 256 covered 54% and lost nothing there.
DEFAULT_TOP_K = 256
TopK = Annotated[int, Field(ge=1, le=1_000_000)] | Literal["exact"] | None


def top_k_field() -> Any:
    """The `top_k` option of every token-level method, documented once."""
    return Field(
        None,
        description="Causal LM only: match the teacher's k most likely tokens per position plus one bucket "
        "for the rest of the vocabulary (a lower bound on the full divergence, exact when the teacher has "
        "no mass outside its top k), so the teacher cache stores k values per token instead of the whole "
        f"vocabulary. Default (or null): k = {DEFAULT_TOP_K}. 'exact': the full-vocabulary loss, whose "
        "stored teacher outputs take the whole vocabulary per token.",
    )


def effective_top_k(top_k: int | str | None) -> int | None:
    """The k a causal LM's token-level KD uses: the spec's, the default when unset, None for 'exact'."""
    if top_k == "exact":
        return None
    return DEFAULT_TOP_K if top_k is None else int(top_k)


def _tag_required(schema: dict[str, Any]) -> None:
    """A discriminated union needs its tag even where the member defaults it, so the schema says so."""
    if DISCRIMINATOR in schema.get("properties", {}):
        schema["required"] = sorted({*schema.get("required", []), DISCRIMINATOR})


class StrictModel(BaseModel):
    """A schema that rejects unknown fields (a typo is a 422, not a silent default) and non-finite numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_tag_required)


class MethodBase(StrictModel):
    """A method's schema, and what the service checks before queueing it: its tasks and its teacher."""

    tasks: ClassVar[frozenset[Task]] = EVERY_TASK
    needs_teacher: ClassVar[bool] = False
    # Whether its loss reads only each token's logits and label, which packed rows keep per example.
    packs: ClassVar[bool] = False

    @classmethod
    def type_name(cls) -> str:
        """The `type` that selects this method in a job spec."""
        return str(cls.model_fields[DISCRIMINATOR].default)


class SoftTargets(MethodBase):
    """The response term shared by every teacher-based method.

    loss = alpha * T^2 * D(teacher_T, student_T) + (1 - alpha) * CE(student, labels)
    """

    needs_teacher: ClassVar[bool] = True

    temperature: float = Field(2.0, gt=0, le=100, description="Softmax temperature T (> 0).")
    alpha: float = Field(
        0.5, ge=0, le=1, description="Weight of the soft-target term; 1 - alpha goes to the hard labels."
    )
    divergence: Divergence = Field(
        "forward_kl",
        description="forward_kl = KL(teacher || student), reverse_kl = KL(student || teacher), "
        "jsd = generalised Jensen-Shannon with `jsd_beta`.",
    )
    jsd_beta: float = Field(
        0.5, gt=0, lt=1, description="Mixture weight of the JSD (only with divergence=jsd)."
    )
    top_k: TopK = top_k_field()


class SupervisedMethod(MethodBase):
    """Plain training on the labels, no teacher: trains teachers and is the control for a distillation."""

    packs: ClassVar[bool] = True
    type: Literal["supervised"] = "supervised"


class SequenceLevelKD(StrictModel):
    """Sequence-level KD (Kim & Rush 2016): train on the teacher's own continuations of the prompts."""

    max_new_tokens: int = Field(32, ge=1, le=1024)
    prompt_tokens: int = Field(
        16, ge=1, le=1024, description="Prompt length taken from each text when no prompt column is given."
    )
    do_sample: bool = False
    sampling_temperature: float = Field(1.0, gt=0, le=10)


class ResponseMethod(SoftTargets):
    """Soft targets (Hinton et al. 2015); on causal LMs this is token-level KD over every target token."""

    packs: ClassVar[bool] = True
    type: Literal["response"] = "response"
    sequence_level: SequenceLevelKD | None = Field(
        None, description="Causal LM only: add the teacher's generated continuations to the training data."
    )
    cross_tokenizer: CrossTokenizer | None = Field(
        None,
        description="Causal LM only: distil from a teacher whose tokenizer differs from the student's. uld: "
        "Universal Logit Distillation (Boizard et al. 2024): wherever both tokenizations of a text reach the "
        "same character, the student's probabilities, sorted, match the teacher's, sorted, under a "
        "Wasserstein-1 (L1) loss. The teacher runs live. Default: the tokenizers must be the same.",
    )
    uld_weight: float = Field(
        1.0, ge=0, le=100, description="cross_tokenizer only: weight of the sorted Wasserstein term."
    )
    hybrid: bool = Field(
        False,
        description="cross_tokenizer only: tokens both vocabularies hold (the same string) are matched one "
        "to one, by an L1 between their probabilities; only the other tokens are sorted.",
    )

    @model_validator(mode="after")
    def _cross_tokenizer_options(self) -> Self:
        if self.cross_tokenizer is None:
            if self.hybrid:
                raise PydanticCustomError("param:hybrid", "'hybrid' needs 'cross_tokenizer: uld'")
            return self
        clashes = {"top_k": self.top_k, "sequence_level": self.sequence_level}
        for name, value in clashes.items():
            if value is not None:
                raise PydanticCustomError(
                    f"param:{name}",
                    "'{name}' reads the teacher in the student's tokens, which cross_tokenizer does not "
                    "have: leave one of them out",
                    {"name": name},
                )
        return self


class FeatureMethod(SoftTargets):
    """Hidden-state matching (FitNets, Romero et al. 2015) added to the response term."""

    type: Literal["feature"] = "feature"
    feature_weight: float = Field(1.0, ge=0, description="Weight of the hidden-state term.")
    layer_map: list[LayerPair] | None = Field(
        None,
        max_length=MAX_DEPTH,
        description="Pairs [teacher_layer, student_layer] of hidden-state indices (0 = embeddings). "
        "Default: the student's layers spread uniformly over the teacher's.",
    )
    loss: Literal["mse", "cosine"] = "mse"
    normalize: bool = Field(True, description="Layer-normalise both states before the MSE.")


class AttentionMethod(SoftTargets):
    """Attention transfer: TinyBERT (Jiao et al. 2020) maps or MiniLM (Wang et al. 2020) relations."""

    tasks: ClassVar[frozenset[Task]] = CLASSIFICATION
    type: Literal["attention"] = "attention"
    style: Literal["tinybert", "minilm"] = Field(
        "minilm",
        description="tinybert: MSE between mapped layers' attention maps (head counts must match); "
        "minilm: KL on the last layer's attention distributions and value relations (any head counts).",
    )
    attention_weight: float = Field(1.0, ge=0)
    layer_map: list[LayerPair] | None = Field(
        None,
        max_length=MAX_DEPTH,
        description="tinybert only: pairs [teacher_layer, student_layer] of 0-based transformer layers.",
    )
    relation_heads: int | None = Field(
        None,
        ge=1,
        le=4096,
        description=(
            "minilm only: heads the relations are split into (default: the most, up to the larger "
            "model's head count, that divide both models' widths)."
        ),
    )


class RelationMethod(SoftTargets):
    """Relational KD (Park et al. 2019): distance-wise and angle-wise losses on pooled representations."""

    tasks: ClassVar[frozenset[Task]] = CLASSIFICATION
    type: Literal["relation"] = "relation"
    distance_weight: float = Field(25.0, ge=0)
    angle_weight: float = Field(50.0, ge=0)


class SelfMethod(MethodBase):
    """Self-distillation (Zhang et al. 2019): classifiers at intermediate depths learn from the deepest."""

    tasks: ClassVar[frozenset[Task]] = CLASSIFICATION
    type: Literal["self"] = "self"
    exits: list[Annotated[int, Field(ge=1, le=MAX_DEPTH)]] | None = Field(
        None,
        max_length=MAX_DEPTH,
        description="Depths (1-based layer counts) with an extra classifier. Default: every other layer.",
    )
    temperature: float = Field(3.0, gt=0, le=100)
    alpha: float = Field(0.5, ge=0, le=1)
    feature_weight: float = Field(0.0, ge=0, description="Weight of the hint from the deepest hidden state.")
    keep_exit: int | None = Field(
        None,
        ge=1,
        le=MAX_DEPTH,
        description="Save the student truncated at this exit's depth (default: the full model).",
    )


class MutualMethod(MethodBase):
    """Deep mutual learning (Zhang et al. 2018): peers trained together, each taught by the others."""

    packs: ClassVar[bool] = True
    type: Literal["mutual"] = "mutual"
    num_peers: int = Field(2, ge=2, le=8, description="Peers trained together, the student included.")
    temperature: float = Field(1.0, gt=0, le=100)
    kl_weight: float = Field(1.0, ge=0, description="Weight of the mean KL to the other peers.")


class OnPolicyGeneration(StrictModel):
    """How the student samples its own continuations for GKD's on-policy batches."""

    max_new_tokens: int = Field(32, ge=1, le=1024, description="Tokens sampled after each prompt, at most.")
    temperature: float = Field(1.0, gt=0, le=10, description="Sampling temperature (> 0).")
    top_p: float | None = Field(
        None, gt=0, le=1, description="Nucleus sampling: keep the smallest set of tokens with this mass."
    )
    prompt_tokens: int = Field(
        16,
        ge=1,
        le=1024,
        description="Prompt length taken from each example that has no prompt part (data.prompt_column).",
    )


class GKDMethod(MethodBase):
    """Generalised KD (Agarwal et al. 2024): on- and off-policy batches, scored by the teacher.

    loss = T^2 * mean over target tokens of D_beta(p_teacher^T, p_student^T), where D_0 = KL(teacher ||
    student), D_1 = KL(student || teacher) and, between, the generalised JSD
    beta KL(p_t || m) + (1 - beta) KL(p_s || m) with m = beta p_t + (1 - beta) p_s (TRL's GKDTrainer).
    """

    tasks: ClassVar[frozenset[Task]] = CAUSAL_LM
    needs_teacher: ClassVar[bool] = True
    packs: ClassVar[bool] = True
    type: Literal["gkd"] = "gkd"
    lmbda: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of train batches replaced by the student's own continuations of their prompts "
        "(on-policy); the others train on the data's targets (off-policy).",
    )
    beta: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Generalised JSD weight: 0 = forward KL(teacher || student), 1 = reverse KL(student || "
        "teacher), in between the generalised Jensen-Shannon divergence.",
    )
    temperature: float = Field(1.0, gt=0, le=100, description="Softmax temperature T of the divergence.")
    top_k: TopK = top_k_field()
    generation: OnPolicyGeneration = Field(
        default_factory=OnPolicyGeneration, description="Sampling of the on-policy continuations."
    )


MethodSpec = Annotated[
    SupervisedMethod
    | ResponseMethod
    | GKDMethod
    | FeatureMethod
    | AttentionMethod
    | RelationMethod
    | SelfMethod
    | MutualMethod,
    Field(discriminator=DISCRIMINATOR),
]

# Derived from the method classes' own declarations: a new method adds itself by its class alone.
METHOD_CLASSES: tuple[type[MethodBase], ...] = get_args(get_args(MethodSpec)[0])
TEACHER_METHODS = frozenset(cls.type_name() for cls in METHOD_CLASSES if cls.needs_teacher)
PACKING_METHODS = frozenset(cls.type_name() for cls in METHOD_CLASSES if cls.packs)
TASK_METHODS: dict[str, frozenset[str]] = {
    task: frozenset(cls.type_name() for cls in METHOD_CLASSES if task in cls.tasks) for task in get_args(Task)
}
