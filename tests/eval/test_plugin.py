"""`lm_eval --model zoo` from lm-eval's own command line, through the `.pth` import hook that
`python -m zoo.eval.plugin install` writes (here into a temporary site directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.eval.helpers import make_checkpoint
from zoo.eval.plugin import PTH, PTH_LINE, main, pth_path

pytest.importorskip("lm_eval")
REPO = Path(__file__).resolve().parents[2]


def python(site: Path, code: str) -> subprocess.CompletedProcess:
    """A fresh interpreter whose site directories include ``site`` (as site-packages would be)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    script = f"import site, sys; site.addsitedir({str(site)!r})\n{code}"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          cwd=site)


@pytest.fixture
def site(tmp_path) -> Path:
    (tmp_path / PTH).write_text(PTH_LINE)
    return tmp_path


def test_the_hook_costs_nothing_until_lm_eval_asks_for_the_model(site):
    result = python(site, "import lm_eval.api.registry as r, zoo\n"
                          "print('torch' in sys.modules, 'zoo.eval.harness' in sys.modules, 'zoo' in r.model_registry)")
    assert result.stdout.split() == ["False", "False", "True"], result.stderr[-2000:]


@pytest.mark.slow
def test_lm_eval_command_line_runs_a_zoo_checkpoint(site):
    checkpoint = make_checkpoint(site / "gpt.ckpt", "gpt")
    from zoo.eval.tasks import task_directory

    args = ["lm_eval", "--model", "zoo", "--model_args", f"checkpoint={checkpoint}", "--tasks", "zoo_cloze",
            "--include_path", str(task_directory()), "--limit", "4", "--batch_size", "4", "--device", "cpu"]
    result = python(site, f"sys.argv = {args!r}\nfrom lm_eval.__main__ import cli_evaluate\ncli_evaluate()")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "zoo ({'checkpoint':" in result.stdout and "|zoo_cloze|" in result.stdout.replace(" ", "")


def test_install_and_uninstall_write_and_remove_the_pth(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    assert pth_path() == tmp_path / PTH
    assert main(["install"]) == 0 and (tmp_path / PTH).read_text() == PTH_LINE
    assert main(["status"]) == 0 and "installed" in capsys.readouterr().out
    assert main(["uninstall"]) == 0 and not (tmp_path / PTH).exists()
    assert main(["bogus"]) == 2
