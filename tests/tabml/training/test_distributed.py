import pytest
from lightning.pytorch.strategies import DDPStrategy

from tabml.core.params import TrainParams, load_params
from tabml.training.distributed import resolve_precision, resolve_strategy, trainer_arguments
from tests.workspace import EXAMPLE_PARAMS


def train_params(**update: object) -> TrainParams:
    return load_params(EXAMPLE_PARAMS).train.model_copy(update=update)


def test_auto_precision_is_full_precision_without_a_gpu() -> None:
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "gpu") == "bf16-mixed"


@pytest.mark.parametrize(
    ("update", "ddp"),
    [
        ({"strategy": "auto", "devices": 1, "num_nodes": 1}, False),
        ({"strategy": "auto", "devices": 2, "num_nodes": 1}, True),
        ({"strategy": "auto", "devices": 1, "num_nodes": 2}, True),
        ({"strategy": "ddp", "devices": 1, "num_nodes": 1}, True),
    ],
)
def test_more_than_one_process_means_ddp_never_a_spawn_launcher(update: dict[str, object], ddp: bool) -> None:
    strategy = resolve_strategy(train_params(**update))
    assert isinstance(strategy, DDPStrategy) if ddp else strategy == "auto"


def test_the_datamodule_shards_and_cpu_ranks_keep_their_own_batchnorm() -> None:
    arguments = trainer_arguments(train_params(accelerator="cpu", sync_batchnorm=True))
    assert arguments["use_distributed_sampler"] is False
    assert arguments["sync_batchnorm"] is False  # torch's SyncBatchNorm is CUDA-only
    assert arguments["precision"] == "32-true"
