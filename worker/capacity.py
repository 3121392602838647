"""What this machine offers jobs: accelerator, devices, memory, free disk, software versions.

Read without importing torch (the Celery pool process never loads it): GPUs from `nvidia-smi`, versions
from the installed packages' metadata.
"""

import logging
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from app.core.config import Settings
from app.workers.records import WorkerCapacity

logger = logging.getLogger(__name__)
GIB = 1024**3
PACKAGES = ("torch", "transformers", "distillery")
# Jobs a ray-executor worker follows at once unless told (`--concurrency`): each is a light process.
RAY_DEFAULT_CONCURRENCY = 4
NVIDIA_SMI_QUERY = ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi lists it."""

    index: int
    name: str
    memory_gb: float


def list_gpus() -> list[Gpu]:
    """The GPUs nvidia-smi lists; none where it is missing or fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        output = subprocess.run(
            [binary, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("nvidia-smi failed (%s): offering no GPU", type(error).__name__)
        return []
    return [_gpu(line) for line in output.splitlines() if line.strip()]


def _gpu(line: str) -> Gpu:
    index, name, memory_mib = (part.strip() for part in line.split(","))
    return Gpu(index=int(index), name=name, memory_gb=round(float(memory_mib) / 1024, 2))


def software_versions() -> dict[str, str]:
    """Python's version and the installed versions of the packages a job runs on."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def host_memory_gb() -> float | None:
    """The machine's physical memory."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 2)
    except (ValueError, OSError, AttributeError):
        return None


def disk_free_gb(settings: Settings) -> float | None:
    """Free space where jobs write (the data directory)."""
    try:
        return round(shutil.disk_usage(settings.data_dir).free / GIB, 2)
    except OSError:
        return None


def offered_accelerator(settings: Settings, gpus: list[Gpu]) -> str:
    """cuda where GPUs are listed (or cuda is forced), else cpu."""
    if settings.worker_accelerator != "auto":
        return settings.worker_accelerator
    return "cuda" if gpus else "cpu"


def probe(settings: Settings, *, gpus: list[Gpu]) -> WorkerCapacity:
    """This machine's capacity; `devices` from the settings when given (`--devices`), else its GPUs or
    on the CPU its cores. Concurrency, one job per device at most, is the same number.

    With the ray executor the worker is a control plane: Ray's scheduler places the job's processes and
    holds the GPUs, so the devices offered are slots of the cluster (`--devices`, default enough for the
    largest job the API accepts) and its own GPUs are not counted; see `ray_devices`.
    """
    if settings.executor == "ray":
        accelerator = offered_accelerator(settings, [])  # cpu unless told: its own GPUs are not offered
        devices = ray_devices(settings)
        concurrency = min(devices, RAY_DEFAULT_CONCURRENCY)
    else:
        accelerator = offered_accelerator(settings, gpus)
        found = len(gpus) if accelerator == "cuda" else (os.cpu_count() or 1)
        devices = concurrency = settings.worker_devices or max(found, 1)
    return WorkerCapacity(
        host=socket.gethostname(),
        accelerator=accelerator,
        devices=devices,
        concurrency=concurrency,
        accelerator_model=gpus[0].name if accelerator == "cuda" and gpus else None,
        device_memory_gb=min(gpu.memory_gb for gpu in gpus) if accelerator == "cuda" and gpus else None,
        host_memory_gb=host_memory_gb(),
        disk_free_gb=disk_free_gb(settings),
        versions=software_versions(),
    )


def ray_devices(settings: Settings) -> int:
    """The cluster's devices a ray-executor worker hands out: `--devices`, else the largest job's."""
    return settings.worker_devices or settings.ray_max_job_nodes * settings.max_job_devices
