"""Each rank's share of a global batch: the same global batches as one process, split over the ranks.

Every rank builds the epoch's global batch order exactly as a single process does (same seed, same
length bucketing); rank r takes every world_size-th example of each batch from position r, so the
ranks' shares have similar lengths (the batch is sorted by length) and pad alike.
"""

from collections.abc import Sequence

from engine.distributed.ranks import Ranks


def rank_share(batch: Sequence[int], ranks: Ranks) -> list[int]:
    """The examples of `batch` this rank trains or evaluates on; empty when the batch is too small."""
    return list(batch[ranks.rank :: ranks.world_size])


def shard_batches(batches: Sequence[Sequence[int]], ranks: Ranks) -> tuple[list[list[int]], list[float]]:
    """Each batch's share for this rank, and the share's weight in the global mean.

    A share's weight is world_size * len(share) / len(batch): gradients averaged over the ranks (DDP,
    FSDP) of losses scaled by it give the gradient of the global batch's mean loss. A rank left with
    no example of a small last batch takes its first example with weight 0, so every rank runs the
    same forwards and backwards (the collectives stay in step).
    """
    shares, weights = [], []
    for batch in batches:
        share = rank_share(batch, ranks)
        weights.append(ranks.world_size * len(share) / len(batch) if share else 0.0)
        shares.append(share or [batch[0]])
    return shares, weights
