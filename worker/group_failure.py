"""Why a job's process group failed, in words: which rank died, with which exit code or signal."""

import re
import signal

# torchrun's ChildFailedError names each failed rank this way; the root cause (the first failure) comes last.
FAILED_RANK = re.compile(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*exitcode\s*:\s*(-?\d+) \(pid: (\d+)\)")


class GroupFailed(Exception):
    """A rank of the job's group died before rank 0 recorded the job's end; another attempt may pass."""


class ClusterUnavailable(Exception):
    """The Ray cluster did not take the job or stopped answering about it; another attempt may pass."""


def describe_failure(agent_output: str, *, exit_code: int | None, rank_errors: dict[int, str]) -> str:
    """Which rank died and how, from the torchrun agent's last output and the errors ranks left behind."""
    failures = FAILED_RANK.findall(agent_output)
    if not failures:
        described = f"the torchrun agent exited with code {exit_code}"
        return _with_errors(described, rank_errors)
    rank, code, pid = (int(value) for value in failures[-1])
    how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
    error = rank_errors.get(rank)
    return f"rank {rank} (pid {pid}) {how}" + (f": {error}" if error else "")


def _with_errors(described: str, rank_errors: dict[int, str]) -> str:
    errors = "; ".join(f"rank {rank}: {error}" for rank, error in sorted(rank_errors.items()))
    return f"{described} ({errors})" if errors else described


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
