"""Where training runs: accelerator, precision and strategy resolved from `params.yaml` into Trainer arguments.

The stage re-executes itself once per rank (Lightning's `ddp` launcher, torchrun, or SLURM's srun), so every
rank builds the same Trainer; only rank 0 tracks and writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tabml.core.params import TrainParams


def uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str) -> str:
    """`auto`: bf16-mixed on a CUDA GPU that supports bf16, 16-mixed on older GPUs, 32-true elsewhere."""
    if precision != "auto":
        return precision
    if not uses_cuda(accelerator):
        return "32-true"
    import torch

    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def resolve_strategy(p: TrainParams) -> Any:
    """`auto` is DDP as soon as there is more than one process: never a spawn/fork launcher, whose children
    would not run this stage's code after `fit`."""
    multi = p.num_nodes > 1 or p.devices not in (1, "1")
    if p.strategy == "ddp" or (p.strategy == "auto" and multi):
        from lightning.pytorch.strategies import DDPStrategy

        # gloo on CPU, nccl on GPUs; a rank that dies is reported instead of hanging the others forever.
        return DDPStrategy(timeout=timedelta(seconds=p.ddp_timeout_seconds))
    return "auto"


def cluster_plugins() -> list[Any]:
    """On SLURM, Lightning's own requeue handler (SIGUSR1, a checkpoint written from inside a signal handler) is
    turned off: preemption goes through SIGTERM and last.ckpt like everywhere else (tabml/resume.py)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def limit_cpu_threads(p: TrainParams) -> None:
    """`train.cpu_threads` intra-op threads for CPU training (every rank runs this). A small tabular network gains
    little from a second thread and, on a busy machine, loses several times over to threads spinning for cores."""
    if p.cpu_threads != "auto" and not uses_cuda(p.accelerator):
        import torch

        torch.set_num_threads(p.cpu_threads)


def trainer_arguments(p: TrainParams) -> dict[str, Any]:
    """The Trainer arguments that depend on where training runs (the same on every rank)."""
    from tabml.training.checkpoints import AtomicCheckpointIO

    return {
        "accelerator": p.accelerator,
        "devices": p.devices,
        "num_nodes": p.num_nodes,
        "strategy": resolve_strategy(p),
        "precision": resolve_precision(p.precision, p.accelerator),
        # torch's SyncBatchNorm runs on CUDA only; CPU ranks normalise over their share of the batch.
        "sync_batchnorm": p.sync_batchnorm and uses_cuda(p.accelerator),
        "plugins": [*cluster_plugins(), AtomicCheckpointIO()],  # best.ckpt and last.ckpt: whole or absent
        # The datamodule shards rows itself; a DistributedSampler would pad val/test with repeated rows.
        "use_distributed_sampler": False,
    }
