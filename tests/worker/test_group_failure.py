"""The requeue event of a failed group names the rank that died and how, from torchrun's own report."""

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from worker.group_failure import GroupFailed, describe_failure
from worker.transient import transient_code, transient_error


def child_failed(failures: dict[int, tuple[int, int]]) -> ChildFailedError:
    """The error the torchrun agent raises when ranks fail: {rank: (pid, exit code)}."""
    return ChildFailedError(
        "worker.rank",
        {
            rank: ProcessFailure(local_rank=rank, pid=pid, exitcode=code, error_file="<N/A>")
            for rank, (pid, code) in failures.items()
        },
    )


def printed(error: ChildFailedError) -> str:
    """The end of the agent's output: the traceback of the error it raises."""
    return f"Traceback (most recent call last):\n{type(error).__name__}: {error}\n"


def test_the_rank_that_failed_first_is_named_with_its_signal() -> None:
    error = child_failed({0: (101, -15), 1: (102, -9)})
    first, failure = error.get_first_failure()
    described = describe_failure(printed(error), exit_code=1, rank_errors={})
    how = {-15: "SIGTERM", -9: "SIGKILL"}[failure.exitcode]
    assert described == f"rank {first} (pid {failure.pid}) was killed by {how}"


def test_a_rank_that_exited_with_an_error_is_named_with_its_code_and_error() -> None:
    described = describe_failure(
        printed(child_failed({1: (102, 1)})), exit_code=1, rank_errors={1: "ValueError: bad batch"}
    )
    assert described == "rank 1 (pid 102) exited with code 1: ValueError: bad batch"


def test_without_a_report_the_agent_exit_code_and_the_ranks_errors_are_given() -> None:
    described = describe_failure("", exit_code=-9, rank_errors={1: "OSError: disk"})
    assert described == "the torchrun agent exited with code -9 (rank 1: OSError: disk)"


def test_a_failed_group_is_a_transient_failure_that_requeues_the_job() -> None:
    stored = transient_error(GroupFailed("rank 1 (pid 102) was killed by SIGKILL"))
    assert transient_code(GroupFailed("x")) == "process_group_failed"
    assert stored.retryable and stored.message == "GroupFailed: rank 1 (pid 102) was killed by SIGKILL"
