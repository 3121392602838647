"""How many CPU threads torch uses in a job process: no more than the CPUs the process may run on.

torch starts one thread per core it sees, but a container limited by a CPU quota (`docker --cpus`,
Kubernetes limits) sees every core of its host: with 16 threads on a quota of 2 CPUs the threads wait
for each other at every parallel region and a training step runs slower than with 2.
"""

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs the cgroup's CFS quota allows (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`); None if unlimited."""
    v2, v1 = root / "cpu.max", root / "cpu" / "cpu.cfs_quota_us"
    try:
        if v2.exists():
            quota, period = v2.read_text().split()
        elif v1.exists():
            quota, period = v1.read_text().strip(), (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        else:
            return None
    except (OSError, ValueError):
        return None
    if quota in ("max", "-1"):
        return None
    return int(quota) / int(period)


def usable_cpus(root: Path = CGROUP) -> int:
    """CPUs in this process's affinity mask, capped by the cgroup's quota (rounded up), at least 1."""
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def threads_per_process(processes: int, root: Path = CGROUP) -> int:
    """The usable CPUs shared evenly by the processes of one job (its ranks), at least 1 each."""
    return max(1, usable_cpus(root) // processes)


def limit_torch_threads(root: Path = CGROUP, *, processes: int = 1) -> tuple[int, int]:
    """Cap torch's intra- and inter-op threads at this process's share of the usable CPUs; returns the
    two counts in effect.

    Call it before torch runs any parallel work: inter-op threads can be set only before they start.
    """
    import torch

    cpus = threads_per_process(processes, root)
    if torch.get_num_threads() > cpus:
        logger.info("%d usable CPUs: torch's %d threads cut to %d", cpus, torch.get_num_threads(), cpus)
        torch.set_num_threads(cpus)
    if torch.get_num_interop_threads() > cpus:
        try:
            torch.set_num_interop_threads(cpus)
        except RuntimeError:  # inter-op work already ran in this process; its pool keeps its size
            logger.info(
                "torch's inter-op pool already started with %d threads", torch.get_num_interop_threads()
            )
    return torch.get_num_threads(), torch.get_num_interop_threads()
