"""The pieces of a distributed run that need no process group: shares, weights, the single-rank view."""

import pytest

from engine.distributed.process_group import launch_from_environment
from engine.distributed.ranks import SINGLE, Ranks
from engine.distributed.sharding import shard_batches


def test_each_rank_takes_every_other_example_of_a_global_batch():
    batches = [[10, 11, 12, 13], [14, 15, 16, 17]]
    first, _ = shard_batches(batches, Ranks(rank=0, world_size=2))
    second, _ = shard_batches(batches, Ranks(rank=1, world_size=2))
    assert first == [[10, 12], [14, 16]] and second == [[11, 13], [15, 17]]


def test_weights_make_the_ranks_mean_the_global_batch_mean_and_an_empty_share_counts_nothing():
    batches = [[0, 1, 2, 3], [4, 5, 6]]
    weights = [shard_batches(batches, Ranks(rank=rank, world_size=3))[1] for rank in range(3)]
    # Gradients are averaged over 3 ranks: each share's weight / 3 is its share of the batch's examples.
    assert [w[0] / 3 for w in weights] == pytest.approx([2 / 4, 1 / 4, 1 / 4])
    assert [w[1] / 3 for w in weights] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    small = [[7, 8]]
    assert shard_batches(small, Ranks(rank=2, world_size=3)) == ([[7]], [0.0])  # a stand-in, weight 0


def test_one_process_collectives_return_their_input():
    assert SINGLE.sum([1.5, 2.0]) == [1.5, 2.0]
    assert SINGLE.broadcast_flag(True) is True
    assert SINGLE.gather([1, 2]) == [1, 2]
    assert SINGLE.broadcast_object({"a": 1}) == {"a": 1}


def test_a_world_of_one_is_no_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launch_from_environment() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    launch = launch_from_environment()
    assert launch is not None and (launch.rank, launch.local_rank, launch.world_size) == (1, 1, 2)
