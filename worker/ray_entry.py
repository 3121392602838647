"""`python -m worker.ray_entry`: a Ray job's entrypoint, which runs the job's ranks with Ray Train.

The job process (`worker/ray_job.py`) submits it with the job's handoff in `HANDOFF_ENV`. A `TorchTrainer`
places `nodes x devices` workers on the cluster (one GPU each on cuda, one CPU otherwise) and starts
their torch.distributed group (NCCL on GPUs, gloo on CPUs); each runs `worker.ray_rank.run_rank`. A
failed worker ends the trainer, which Ray does not restart (the job's own requeue retries): the
entrypoint prints one line saying which rank failed and how, and exits 1, so the Ray job ends FAILED.
"""

import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer
from ray.train.v2.api.exceptions import TrainingFailedError, WorkerGroupError

from distillery.jobspec import JobSpec
from distillery.jobspec.resources import ResourcesSpec
from worker.group_dir import handoff_from_json
from worker.ray_job import FAILURE_PREFIX, HANDOFF_ENV, submission_id
from worker.ray_rank import run_rank

logger = logging.getLogger(__name__)
# As engine/distributed/process_group.GROUP_TIMEOUT: the slowest collective the engine waits in.
GROUP_TIMEOUT_SECONDS = 3600
PID = re.compile(r"pid[=:]\s*(\d+)")
DIED = ("actor died", "worker process has died", "health check failed")


def main() -> int:
    """Run the job's ranks on the cluster; 0 once every rank finished, 1 when one failed."""
    logging.basicConfig(level=logging.INFO)
    handoff_text = os.environ[HANDOFF_ENV]
    handoff = handoff_from_json(handoff_text)
    resources = JobSpec.model_validate(handoff.job.spec).resources
    ray.init()
    use_gpu = wants_gpu(resources.accelerator, cluster_gpus=ray.cluster_resources().get("GPU", 0))
    # Ray Train keeps its run state here; the job's own checkpoints and outputs are in the artifact store.
    storage = Path(tempfile.gettempdir()) / "distillery-ray"
    name = submission_id(handoff.job)
    trainer = TorchTrainer(
        run_rank,
        train_loop_config={"handoff": handoff_text},
        scaling_config=scaling_config(resources, use_gpu=use_gpu),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=GROUP_TIMEOUT_SECONDS),
        run_config=RunConfig(
            name=name, storage_path=str(storage), failure_config=FailureConfig(max_failures=0)
        ),
    )
    try:
        trainer.fit()
    except TrainingFailedError as error:
        # The entrypoint's own output, which the job process reads back from the Ray job's logs.
        sys.stdout.write(f"{FAILURE_PREFIX}{describe(error)}\n")
        sys.stdout.flush()
        return 1
    finally:
        shutil.rmtree(storage / name, ignore_errors=True)
    return 0


def wants_gpu(accelerator: str, *, cluster_gpus: float) -> bool:
    """cuda asks for GPUs, cpu for none; auto takes GPUs where the cluster has them."""
    return accelerator == "cuda" or (accelerator == "auto" and cluster_gpus > 0)


def scaling_config(resources: ResourcesSpec, *, use_gpu: bool) -> ScalingConfig:
    """`nodes x devices` workers, one device each; PACK fills a node's devices before the next node's."""
    per_worker = {"CPU": 1.0, "GPU": 1.0} if use_gpu else {"CPU": 1.0}
    return ScalingConfig(
        num_workers=resources.nodes * resources.devices,
        use_gpu=use_gpu,
        resources_per_worker=per_worker,
        placement_strategy="PACK",
    )


def describe(error: TrainingFailedError) -> str:
    """Which rank failed and how, in one line."""
    if not isinstance(error, WorkerGroupError) or not error.worker_failures:
        return _last_line(str(error))
    # A rank that died comes first: the others' errors (a collective's peer gone) follow from it.
    failures = sorted(error.worker_failures.items(), key=lambda item: (not _died(str(item[1])), item[0]))
    rank, failure = failures[0]
    text = str(failure)
    pid = PID.search(text)
    who = f"rank {rank}" + (f" (pid {pid.group(1)})" if pid else "")
    if _died(text):
        return f"{who} died: its Ray worker process exited unexpectedly (killed, or out of memory)"
    return f"{who} failed: {_last_line(text)}"


def _died(text: str) -> bool:
    return any(marker in text.lower() for marker in DIED)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


if __name__ == "__main__":
    sys.exit(main())
