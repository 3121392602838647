"""HTTP shapes of recipe sweeps: the request, the sweep with its trials and report, a page of sweeps."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.pagination import ListObject
from app.api.timestamps import optional_unix_seconds, unix_seconds
from app.sweeps.models import Sweep, SweepStage, SweepStatus
from distillery.jobspec.sweep import SweepSpec


class SweepCreate(SweepSpec):
    """A sweep to run: a base job, a search space, a budget, an objective and a control."""


class TrialPublic(BaseModel):
    """One trial: its job, state, parameters, objective value on the eval split and eval curve."""

    number: int
    job_id: str
    status: Literal["queued", "running", "succeeded", "pruned", "failed", "cancelled"]
    params: dict[str, Any]
    value: float | None = Field(None, description="The objective on the eval split, once it succeeded.")
    best_step: int | None = Field(None, description="The step of its best evaluation.")
    eval_curve: list[dict[str, float]] = Field(
        default_factory=list, description="{step, value} per evaluation."
    )


class BestTrial(BaseModel):
    """The trial with the best objective on the eval split."""

    number: int
    job_id: str
    value: float | None
    params: dict[str, Any]


class SweepError(BaseModel):
    """Why a sweep failed."""

    code: str
    message: str


class SweepPublic(BaseModel):
    """A recipe sweep: its spec, stage, trials, best trial and, once done, its report."""

    id: str = Field(..., examples=["swp_3f9a1b2c3d4e5f6a7b8c9d0e"])
    object: Literal["sweep"] = "sweep"
    name: str | None
    status: SweepStatus
    stage: SweepStage = Field(..., description="trials, then test (the best trial once), control, done.")
    spec: dict[str, Any] = Field(..., description="The validated sweep spec, its preset resolved.")
    trials: list[TrialPublic]
    best_trial: BestTrial | None
    report: dict[str, Any] | None = Field(
        None,
        description="Once done: the objective, the best trial, its test metrics and retention, the control, "
        "the gain and its verdict, the trial counts and the CPU and GPU hours spent.",
    )
    error: SweepError | None
    created_at: int
    updated_at: int
    finished_at: int | None
    metadata: dict[str, Any] | None

    @classmethod
    def from_row(
        cls, sweep: Sweep, *, trials: list[dict[str, Any]], best: dict[str, Any] | None
    ) -> "SweepPublic":
        """The public view of a stored sweep with its trials' views."""
        return cls(
            id=sweep.id,
            name=sweep.name,
            status=SweepStatus(sweep.status),
            stage=SweepStage(sweep.stage),
            spec=sweep.spec,
            trials=[TrialPublic(**trial) for trial in trials],
            best_trial=BestTrial(**best) if best else None,
            report=sweep.report,
            error=SweepError(**sweep.error) if sweep.error else None,
            created_at=unix_seconds(sweep.created_at),
            updated_at=unix_seconds(sweep.updated_at),
            finished_at=optional_unix_seconds(sweep.finished_at),
            metadata=sweep.metadata_,
        )


class SweepList(ListObject[SweepPublic, str]):
    """A page of sweeps, newest first."""
