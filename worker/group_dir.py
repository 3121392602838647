"""The folder a job process shares with the ranks of its group: the claimed job, their PIDs, how they end.

The job process writes `job.json` before it starts the group; each rank writes `rank-<n>.pid` once it is
armed to die with the torchrun agent, a rank that fails writes `rank-<n>.error`, and rank 0 writes
`leader.done` once it has recorded the job's end (or found its lease lost).
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from app.jobs.lifecycle import ClaimedJob
from worker.job_inputs import ResolvedInputs

GROUP_DIR_ENV = "DISTILLERY_GROUP_DIR"
JOB_PROCESS_ENV = "DISTILLERY_JOB_PROCESS_PID"


@dataclass(frozen=True)
class Handoff:
    """What every rank needs from the job process: the claimed job, whose worker it is, and its inputs."""

    job: ClaimedJob
    worker_id: str
    inputs: ResolvedInputs


@dataclass(frozen=True)
class GroupDir:
    """One group's folder (a private temporary directory of the job process)."""

    path: Path

    def write_handoff(self, handoff: Handoff) -> None:
        (self.path / "job.json").write_text(handoff_json(handoff))

    def read_handoff(self) -> Handoff:
        return handoff_from_json((self.path / "job.json").read_text())

    def write_pid(self, rank: int) -> None:
        _write_atomically(self.path / f"rank-{rank}.pid", str(os.getpid()))

    def pid(self, rank: int) -> int | None:
        """The PID rank `rank` wrote, None before it has."""
        try:
            return int((self.path / f"rank-{rank}.pid").read_text())
        except FileNotFoundError:
            return None

    def pids(self) -> dict[int, int]:
        """Every rank's PID, by rank, of the ranks that have started."""
        found = (
            path.name.removeprefix("rank-").removesuffix(".pid") for path in self.path.glob("rank-*.pid")
        )
        return {rank: pid for rank in map(int, found) if (pid := self.pid(rank)) is not None}

    def write_error(self, rank: int, message: str) -> None:
        _write_atomically(self.path / f"rank-{rank}.error", message)

    def error(self, rank: int) -> str | None:
        """The error rank `rank` wrote before it exited, None if it wrote none."""
        try:
            return (self.path / f"rank-{rank}.error").read_text()
        except FileNotFoundError:
            return None

    def mark_leader_done(self) -> None:
        (self.path / "leader.done").touch()

    def leader_done(self) -> bool:
        """Whether rank 0 has finished its part: the job's end recorded, or its lease found lost."""
        return (self.path / "leader.done").exists()


def handoff_json(handoff: Handoff) -> str:
    """The handoff as JSON, for a file or a Ray job's environment."""
    body = {"job": asdict(handoff.job), "worker_id": handoff.worker_id, "inputs": asdict(handoff.inputs)}
    return json.dumps(body)


def handoff_from_json(text: str) -> Handoff:
    """The handoff `handoff_json` wrote."""
    body = json.loads(text)
    job = ClaimedJob(**{**body["job"], "devices": tuple(body["job"]["devices"])})
    return Handoff(job=job, worker_id=body["worker_id"], inputs=ResolvedInputs(**body["inputs"]))


def _write_atomically(path: Path, text: str) -> None:
    """Write under a temporary name and rename, so a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.rename(path)
