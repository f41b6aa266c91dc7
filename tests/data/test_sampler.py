"""The training order: a keyed permutation computed per position (`BlockPermutation`), split across
ranks as `DistributedSampler` splits it, with memory flat in the number of blocks and a resume that
jumps to its position."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest

from zoo.data.datamodule import BlockPermutation, SeededSampler


class Blocks:
    """A dataset of `n` blocks that holds nothing: only its length matters to a sampler."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@pytest.mark.parametrize("n", [*range(1, 70), 97, 128, 129, 1000, 4097, 65_537])
def test_block_permutation_is_a_bijection(n: int) -> None:
    values = BlockPermutation(n, key=n)(np.arange(n))
    assert sorted(values.tolist()) == list(range(n))


def test_block_permutation_shuffles_and_depends_on_its_key() -> None:
    n = 10_000
    first, second = BlockPermutation(n, 1)(np.arange(n)), BlockPermutation(n, 2)(np.arange(n))
    assert (first != second).mean() > 0.99
    # a shuffle, not a shift or a stride: consecutive positions land far apart, fixed points are rare
    assert np.abs(np.diff(first)).mean() > n / 4 and (first == np.arange(n)).sum() < 10
    # the same key gives the same order, in any piece and any order of evaluation
    assert np.array_equal(BlockPermutation(n, 1)(np.arange(n)[::-1]), first[::-1])


def test_a_position_of_a_huge_epoch_costs_what_a_small_one_does() -> None:
    n = 10**12  # a trillion blocks: no list of them could exist
    positions = np.array([0, 1, 2, n // 2, n - 2, n - 1], dtype=np.int64)
    values = BlockPermutation(n, 7)(positions)
    assert len(set(values.tolist())) == len(positions) and ((values >= 0) & (values < n)).all()


def _epoch(n: int, world: int, seed: int = 3, epoch: int = 0) -> list[list[int]]:
    orders = []
    for rank in range(world):
        sampler = SeededSampler(Blocks(n), num_replicas=world, rank=rank, seed=seed)
        sampler.set_epoch(epoch)
        orders.append([index for index, _ in sampler])
    return orders


@pytest.mark.parametrize(("n", "world"), [(10, 1), (10, 2), (10, 3), (7, 4), (3, 5), (1, 2)])
def test_ranks_split_one_order_as_distributed_sampler_does(n: int, world: int) -> None:
    ranks = _epoch(n, world)
    per_rank = math.ceil(n / world)
    assert [len(order) for order in ranks] == [per_rank] * world
    # interleaving the ranks gives back the epoch's order: a permutation of the blocks, padded by
    # wrapping to its start (DistributedSampler's padding)
    interleaved = [ranks[position % world][position // world] for position in range(per_rank * world)]
    order = interleaved[:n]
    assert sorted(order) == list(range(n))
    assert interleaved[n:] == (order * world)[: per_rank * world - n]
    assert _epoch(n, world, epoch=1) != ranks or n == 1, "a fresh order every epoch"


def test_mask_seeds_are_per_example_and_resume_jumps_to_its_position() -> None:
    n = 5_000
    sampler = SeededSampler(Blocks(n), num_replicas=2, rank=1, seed=11)
    sampler.set_epoch(4)
    uninterrupted = list(sampler)
    assert len({seed for _, seed in uninterrupted}) == len(uninterrupted)
    resumed = SeededSampler(Blocks(n), num_replicas=2, rank=1, seed=11)
    resumed.load_state_dict({"epoch": 4, "yielded": 1234})
    assert list(resumed) == uninterrupted[1234:]
    assert resumed.state_dict() == {"epoch": 5, "yielded": 0}


def test_memory_is_flat_in_the_number_of_blocks() -> None:
    """DistributedSampler's `randperm(n).tolist()` held a Python int per block (about 36 bytes each):
    1.8 GB for 50 M blocks in every process. Now a few chunks of positions, whatever n is."""
    peaks = {}
    for n in (10_000, 50_000_000):
        sampler = SeededSampler(Blocks(n), num_replicas=1, rank=0, seed=0)
        tracemalloc.start()
        start = time.perf_counter()
        iterator = iter(sampler)
        first = [next(iterator) for _ in range(100)]
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.perf_counter() - start < 5 and len(first) == 100
    assert peaks[50_000_000] < 2_000_000 and peaks[50_000_000] < 2 * peaks[10_000] + 100_000, peaks
    # a resume deep into the epoch starts at once (the old sampler replayed every position before it)
    sampler = SeededSampler(Blocks(50_000_000), num_replicas=1, rank=0, seed=0)
    sampler.load_state_dict({"epoch": 0, "yielded": 49_000_000})
    start = time.perf_counter()
    next(iter(sampler))
    assert time.perf_counter() - start < 1
