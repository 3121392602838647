"""The ray executor's parts that need no cluster: what its worker offers, and how a failure is told."""

from ray.train.v2.api.exceptions import ControllerError, WorkerGroupError

from app.core.config import Settings
from worker.capacity import Gpu, probe
from worker.ray_entry import describe, wants_gpu


def test_a_ray_executor_worker_offers_slots_of_the_cluster_not_its_own_gpus() -> None:
    settings = Settings(executor="ray", ray_max_job_nodes=2, max_job_devices=4)
    capacity = probe(settings, gpus=[Gpu(index=0, name="NVIDIA H100", memory_gb=80.0)])
    assert (capacity.accelerator, capacity.devices, capacity.concurrency) == ("cpu", 8, 4)

    told = probe(Settings(executor="ray", worker_accelerator="cuda", worker_devices=16), gpus=[])
    assert (told.accelerator, told.devices) == ("cuda", 16)


def test_auto_takes_gpus_only_where_the_cluster_has_them() -> None:
    assert wants_gpu("cuda", cluster_gpus=0) and wants_gpu("auto", cluster_gpus=8)
    assert not wants_gpu("auto", cluster_gpus=0) and not wants_gpu("cpu", cluster_gpus=8)


def test_a_failure_names_the_rank_its_pid_and_how_it_ended() -> None:
    died = RuntimeError(
        "The actor died unexpectedly before finishing this task.\n\tpid: 4242\n\tip: 10.0.0.2"
    )
    assert describe(WorkerGroupError("", {1: died})) == (
        "rank 1 (pid 4242) died: its Ray worker process exited unexpectedly (killed, or out of memory)"
    )
    peer = RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error: Connection reset by peer")
    assert describe(WorkerGroupError("", {0: peer, 1: died})).startswith("rank 1 (pid 4242) died")
    raised = RuntimeError("Traceback (most recent call last):\n  ...\nValueError: no such column")
    assert describe(WorkerGroupError("", {0: raised})) == "rank 0 failed: ValueError: no such column"
    assert describe(ControllerError(RuntimeError("placement group timed out"))) == "placement group timed out"
