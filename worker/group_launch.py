"""A job's torchrun group as processes: started in a session of its own, watched, stopped as a whole.

torchrun starts each rank in a session of its own (so that it can signal a rank's whole tree), so a
signal to the agent's process group does not reach the ranks: stopping signals the agent's group and
each rank's group, by the PIDs the ranks left in the group's folder.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import IO

from celery.platforms import set_pdeathsig

from app.jobs.lifecycle import ClaimedJob
from worker.cpu_threads import threads_per_process
from worker.group_dir import GROUP_DIR_ENV, JOB_PROCESS_ENV, GroupDir

# Between SIGTERM and SIGKILL. Under delivery.JOB_STOP_SECONDS (10 s), after which the Celery pool process
# kills the job process, and the agent and the ranks with it.
STOP_GRACE_SECONDS = 8.0
AGENT_OUTPUT_LINES = 200


def torchrun_command(job: ClaimedJob, *, processes: int) -> list[str]:
    """The torchrun command that runs `worker.rank` for the job on `processes` local ranks."""
    # --standalone: the rendezvous store binds a free port itself, so two groups starting at once on one
    # machine never race for a port picked beforehand. --max-restarts 0: the job's own requeue retries.
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(processes),
        "--max-restarts",
        "0",
        "-m",
        "worker.rank",
        job.id,
    ]


def group_environment(job: ClaimedJob, *, processes: int, group_dir: GroupDir) -> dict[str, str]:
    """This process's environment (the settings), plus the group's folder, its devices and thread share."""
    env = {
        **os.environ,
        GROUP_DIR_ENV: str(group_dir.path),
        JOB_PROCESS_ENV: str(os.getpid()),
        "OMP_NUM_THREADS": str(threads_per_process(processes)),
    }
    if job.devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(device) for device in job.devices)
    return env


class ProcessGroup:
    """A running torchrun agent and its ranks."""

    def __init__(self, command: list[str], *, env: dict[str, str], group_dir: GroupDir) -> None:
        self.group_dir = group_dir
        self.process = subprocess.Popen(
            command,
            env=env,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=partial(_die_with_parent, os.getpid()),
        )
        self._output: deque[str] = deque(maxlen=AGENT_OUTPUT_LINES)
        assert self.process.stderr is not None
        self._relay = threading.Thread(target=self._relay_output, args=(self.process.stderr,), daemon=True)
        self._relay.start()

    @property
    def agent_pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        """Whether the agent has exited (after stopping its ranks)."""
        return self.process.poll() is not None

    def rank_exited(self, rank: int) -> bool:
        """Whether rank `rank` started and has exited since."""
        pid = self.group_dir.pid(rank)
        return pid is not None and not is_running(pid)

    def stop(self) -> int:
        """SIGTERM to the agent's and every rank's process group, SIGKILL after a grace; the agent's code."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and not self._all_gone():
            time.sleep(0.1)
        self._signal_all(signal.SIGKILL)
        code = self.process.wait()
        self._relay.join(timeout=5)
        return code

    def agent_output(self) -> str:
        """The last lines the agent and the ranks wrote to their standard error."""
        return "".join(self._output)

    def _all_gone(self) -> bool:
        ranks = self.group_dir.pids().values()
        return self.process.poll() is not None and not any(is_running(pid) for pid in ranks)

    def _signal_all(self, signum: signal.Signals) -> None:
        # Each rank leads a process group of its own (its tree); a pid is reused only long after it exits.
        groups = [*self.group_dir.pids().values()]
        if self.process.poll() is None:
            groups.append(self.process.pid)
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signum)

    def _relay_output(self, stream: IO[bytes]) -> None:
        """Pass the group's standard error on to this process's, keeping its last lines."""
        for line in iter(stream.readline, b""):
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
            self._output.append(line.decode(errors="replace"))


def is_running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _die_with_parent(parent_pid: int) -> None:
    """In the agent before it runs: die when the job process dies, or at once if it already has."""
    set_pdeathsig("SIGKILL")
    if os.getppid() != parent_pid:
        os._exit(1)
