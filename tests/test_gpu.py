"""The GPU benchmark script: a smoke run where a GPU is present, a clean refusal where not."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_gpu_script_says_it_needs_a_gpu(capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_train
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert gpu_train.main(["--steps", "1"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_script_reports_tokens_and_mfu():
    result = _run("--layers", "2", "--steps", "3", "--warmup", "2", "--batch-size", "4", "--mode", "default")
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.match(r"tokens/s: [\d,]+  MFU: \d+\.\d % of \d+ TFLOP/s", last), last
