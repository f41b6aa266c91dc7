"""``FSDP2``: fully sharded data parallel through Lightning on any accelerator, CPU included.

Lightning's ``FSDPStrategy`` (FSDP1) refuses a CPU accelerator; its ``ModelParallelStrategy`` does
not, and calls ``LightningModule.configure_model``, where ``zoo.tasks.base.LanguageModelTask``
applies ``torch.distributed.fsdp.fully_shard`` (FSDP2) per layer and to the model. This subclass
only fixes ``ModelParallelStrategy``'s defaults for pure data parallelism: its ``"auto"`` sizes mean
one data-parallel replica per node and tensor parallelism across a node's devices, so every device
would read the same batches; here every process is its own data-parallel rank (a 1-D shard mesh),
and the checkpoint is one full file (gathered on rank 0) that ``zoo generate``, ``zoo convert``
and ``--ckpt_path`` open like any other. The backend follows the device: gloo on CPU, nccl on GPUs.
"""

from __future__ import annotations

from datetime import timedelta

from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.constants import default_pg_timeout


class FSDP2(ModelParallelStrategy):
    """``ModelParallelStrategy`` with every process a data-parallel rank (``configs/scale/fsdp.yaml``).

    Args:
        save_distributed_checkpoint: False = one full checkpoint file written by rank 0 (weights and
            optimizer state gathered); True = a directory of per-rank shards (PyTorch distributed
            checkpoint), which only a run with this strategy can read back.
        process_group_backend: None = gloo on CPU, nccl on CUDA.
        timeout: Collective timeout.
    """

    def __init__(
        self,
        save_distributed_checkpoint: bool = False,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, timeout=timeout)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # all ranks shard and split the data
        super().setup_environment()


__all__ = ["FSDP2"]
