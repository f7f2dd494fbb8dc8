import pytest
import torch

from tabml.training.datamodule import (
    EvalBatches,
    TensorTable,
    TrainBatches,
    epoch_permutation,
    global_batch_size,
    shard_bounds,
)


def table(n: int) -> TensorTable:
    """Row i holds i everywhere, so a batch says which rows it holds."""
    rows = torch.arange(n)
    return TensorTable(rows[:, None].float(), rows[:, None], rows)


def epoch_rows(loader: TrainBatches, epoch: int) -> list[list[int]]:
    loader.sampler.set_epoch(epoch)
    return [y.tolist() for item in loader for _, _, y in item]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_together_take_exactly_the_rows_of_each_single_process_step(world_size: int) -> None:
    single = epoch_rows(TrainBatches(table(103), 12, 0, 1, seed=7), epoch=2)
    ranks = [epoch_rows(TrainBatches(table(103), 12, r, world_size, seed=7), epoch=2) for r in range(world_size)]
    assert all(len(steps) == len(single) == 103 // 12 for steps in ranks)  # same step count: no DDP deadlock
    for step, rows in enumerate(single):
        shares = [steps[step] for steps in ranks]
        assert sorted(sum(shares, [])) == sorted(rows)
        assert {len(share) for share in shares} == {12 // world_size}


def test_the_order_depends_on_seed_and_epoch_only() -> None:
    loader = TrainBatches(table(64), 8, 0, 1, seed=1)
    assert epoch_rows(loader, 0) == epoch_rows(TrainBatches(table(64), 8, 0, 1, seed=1), 0)
    assert epoch_rows(loader, 0) != epoch_rows(loader, 1)
    assert epoch_rows(loader, 0) != epoch_rows(TrainBatches(table(64), 8, 0, 1, seed=2), 0)
    assert torch.equal(epoch_permutation(64, 1, 3), epoch_permutation(64, 1, 3))


def test_several_steps_per_call_hand_out_the_same_batches_in_fewer_items() -> None:
    one = TrainBatches(table(100), 8, 0, 1, seed=3)
    five = TrainBatches(table(100), 8, 0, 1, seed=3, steps_per_call=5)
    assert len(one) == 12 and len(five) == 3  # 12 steps: 5 + 5 + 2
    assert epoch_rows(one, 4) == epoch_rows(five, 4)


def test_a_restored_position_continues_the_epoch_where_the_checkpoint_was_taken() -> None:
    loader = TrainBatches(table(100), 8, 0, 1, seed=3, steps_per_call=2)
    loader.sampler.set_epoch(1)
    items = iter(loader)
    seen = [next(items), next(items)]
    state = loader.state_dict()
    assert state == {"epoch": 1, "position": 2}

    resumed = TrainBatches(table(100), 8, 0, 1, seed=3, steps_per_call=2)
    resumed.load_state_dict(state)
    rest = epoch_rows(resumed, epoch=1)
    full = epoch_rows(TrainBatches(table(100), 8, 0, 1, seed=3, steps_per_call=2), epoch=1)
    assert [y.tolist() for item in seen for _, _, y in item] + rest == full
    assert len(epoch_rows(resumed, epoch=2)) == 12  # the next epoch is whole again


def test_a_table_smaller_than_the_batch_is_one_step_of_every_row() -> None:
    assert sorted(epoch_rows(TrainBatches(table(5), 8, 0, 1, seed=0), 0)[0]) == list(range(5))


@pytest.mark.parametrize(("n", "world_size"), [(669, 2), (10, 3), (7, 4), (3, 1)])
def test_evaluation_shards_cover_every_row_exactly_once_without_padding(n: int, world_size: int) -> None:
    rows = [
        y.tolist()
        for rank in range(world_size)
        for _, _, y in EvalBatches(table(n), batch_size=4, rank=rank, world_size=world_size)
    ]
    assert sorted(sum(rows, [])) == list(range(n))
    sizes = [shard_bounds(n, r, world_size)[1] - shard_bounds(n, r, world_size)[0] for r in range(world_size)]
    assert max(sizes) - min(sizes) <= 1


def test_the_global_batch_splits_evenly_over_ranks_and_shrinks_on_small_tables() -> None:
    assert global_batch_size(100_000, 256, 16, 3) == 255
    assert global_batch_size(100_000, 256, 16, 1) == 256
    assert global_batch_size(320, 256, 16, 2) == 20  # 320 rows / 16 steps
    assert global_batch_size(10, 256, 16, 4) == 8  # never below one row per rank, at least 8 rows
