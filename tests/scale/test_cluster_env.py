"""Multi-node launch: Lightning reads the rank layout from SLURM's or torchrun's environment
variables, so `zoo fit --trainer.num_nodes N` needs nothing else. No cluster needed: each case
builds a Trainer in a subprocess with the variables set, and reads back what Lightning decided."""

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json, lightning as L
trainer = L.Trainer(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", logger=False,
                    enable_checkpointing=False, enable_progress_bar=False)
env = trainer.strategy.cluster_environment
print(json.dumps({"env": type(env).__name__, "world_size": trainer.world_size, "global_rank": trainer.global_rank,
                  "local_rank": trainer.local_rank, "node_rank": trainer.node_rank,
                  "master": [env.main_address, env.main_port]}))
"""

SLURM = {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
         "SLURM_NODEID": "1", "SLURM_NODELIST": "node[07-08]", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "zoo"}
TORCHRUN = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "GROUP_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "node07", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "zoo-run"}


@pytest.mark.parametrize(("variables", "expected_env"), [(SLURM, "SLURMEnvironment"),
                                                         (TORCHRUN, "TorchElasticEnvironment")])
def test_lightning_takes_the_ranks_from_the_launcher(variables: dict[str, str], expected_env: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))
             and k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")}
    result = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **variables}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["env"] == expected_env
    assert (seen["world_size"], seen["global_rank"], seen["local_rank"], seen["node_rank"]) == (4, 3, 1, 1)
    assert seen["master"][0] in ("node07", "127.0.0.1") and seen["master"][1] > 0
