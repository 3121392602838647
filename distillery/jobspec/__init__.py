"""The job spec: what a client posts and what the worker runs; pure pydantic, no torch."""

from distillery.jobspec.job import (
    DATA_FILE_FIELDS,
    DataSpec,
    JobSpec,
    ModelRef,
    ReportSpec,
    StudentSpec,
    TrainingSpec,
)
from distillery.jobspec.lora import LoraSpec
from distillery.jobspec.methods import (
    AttentionMethod,
    FeatureMethod,
    GKDMethod,
    MethodSpec,
    MutualMethod,
    RelationMethod,
    ResponseMethod,
    SelfMethod,
    SupervisedMethod,
)
from distillery.jobspec.resources import FSDP_METHODS, ResourcesSpec

__all__ = [
    "DATA_FILE_FIELDS",
    "AttentionMethod",
    "DataSpec",
    "FSDP_METHODS",
    "FeatureMethod",
    "GKDMethod",
    "JobSpec",
    "LoraSpec",
    "MethodSpec",
    "ModelRef",
    "MutualMethod",
    "RelationMethod",
    "ReportSpec",
    "ResourcesSpec",
    "ResponseMethod",
    "SelfMethod",
    "StudentSpec",
    "SupervisedMethod",
    "TrainingSpec",
]
