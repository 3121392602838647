"""One job through `run_job` in this process: the tests' stand-in for the worker's rank entry point.

Run as `python distributed_job.py ARGS.json` (one process) or under `torch.distributed.run` (each rank
runs it). ARGS.json holds the spec, the workdir, where models and files are, the device (default the
CPU) and on which step rank 0's callbacks ask to stop (or raise). Each rank writes `rank-<r>.json` under
`results`: its result and what its callbacks heard.
"""

import json
import os
import sys
from pathlib import Path

from engine_helpers import RecordingCallbacks

from distillery.jobspec import JobSpec, ModelRef
from engine.run import run_job


class FailingCallbacks(RecordingCallbacks):
    """Recording callbacks that raise when told of step `fail_at_step`: one rank failing alone."""

    def __init__(self, *, stop_after_step: int | None, fail_at_step: int | None) -> None:
        super().__init__(stop_after_step=stop_after_step)
        self.fail_at_step = fail_at_step

    def on_progress(self, *, step: int, total_steps: int, epoch: float) -> None:
        if step == self.fail_at_step:
            raise RuntimeError(f"rank 0 fails alone at step {step}")
        super().on_progress(step=step, total_steps=total_steps, epoch=epoch)


def main(arguments_path: str) -> None:
    """Run the job and record this rank's result."""
    arguments = json.loads(Path(arguments_path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    model_root, files = Path(arguments["model_root"]), arguments["files"]
    # Rank 0's callbacks stop after `stop_after_step`; the others' would stop at once if they were asked.
    stop_after = arguments.get("stop_after_step") if rank == 0 else 1
    fail_at = arguments.get("fail_at_step") if rank == 0 else None
    callbacks = FailingCallbacks(stop_after_step=stop_after, fail_at_step=fail_at)

    def resolve_model(ref: ModelRef) -> Path:
        assert ref.path is not None
        return model_root / ref.path

    result = run_job(
        JobSpec.model_validate(arguments["spec"]),
        workdir=Path(arguments["workdir"]),
        resolve_model=resolve_model,
        resolve_file=lambda file_id: Path(files[file_id]),
        callbacks=callbacks,
        device=arguments.get("device", "cpu"),  # None: CUDA device LOCAL_RANK where there is CUDA
    )
    record = {
        "status": result.status,
        "student_dir": str(result.student_dir) if result.student_dir is not None else None,
        "report": result.report,
        "outputs": [str(path) for path in result.outputs],
        "progress": callbacks.progress,
        "messages": callbacks.messages,
        "metrics": callbacks.metrics,
        "checkpoints": [(step, str(path), best) for step, path, best in callbacks.checkpoints],
    }
    results = Path(arguments["results"])
    results.mkdir(parents=True, exist_ok=True)
    (results / f"rank-{rank}.json").write_text(json.dumps(record, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
