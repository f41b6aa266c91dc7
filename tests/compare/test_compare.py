"""``zoo compare`` as a plan of ``zoo fit`` runs: every run is a fit config in its own directory that
retrains it alone, bit for bit; the dry run prints every run's size; bad input — the study, the
launcher, a run directory of another config — fails in one line before anything trains."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import zoo.compare.launch
from zoo.cli import main as zoo_main
from zoo.cli import run as zoo_run
from zoo.commands.compare import main
from zoo.compare import load_comparison, plan, run_comparison
from zoo.compare.job import FIT_FILE, run_job
from zoo.compare.results import prepare, read_result
from zoo.models import GPTConfig
from zoo.runs import read_run, release_run

from .conftest import TINY_REVERSE, write_study

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "configs" / "compare").glob("*.yaml"))


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although it should not have")

    monkeypatch.setattr(zoo.compare.launch, "_local", fail)
    monkeypatch.setattr(zoo.compare.launch, "_slurm", fail)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_a_run_is_a_zoo_fit_config_that_retrains_alone_bit_for_bit(tmp_path):
    study = write_study(tmp_path / "tiny.yaml", families=["gpt"])
    (run,) = plan(load_comparison(study, output_dir=str(tmp_path / "out")))
    prepare([run], fresh=False, threads=1)
    fit = yaml.safe_load((run.dir / FIT_FILE).read_text())
    assert fit == run.fit_config and "OMP_NUM_THREADS=1 zoo fit --config" in (run.dir / FIT_FILE).read_text()
    assert fit["model"]["class_path"] == "zoo.tasks.InstructionLM" and fit["data"]["init_args"]["builtin"] == "reverse"
    assert fit["seed_everything"] == fit["data"]["init_args"]["seed"] == 0
    run_job(run.dir, threads=1)  # what every launcher runs: fit, then validate and test of the final weights
    record = read_result(run)
    assert record["steps"] == 4 and record["tokens"] == run.tokens and record["flops"] == run.flops
    assert 0 <= record["metrics"]["val_exact_match"] <= 1 and record["metrics"]["test_cer"] >= 0
    assert [p["step"] for p in record["curve"]] == [2, 4] and record["peak_mem_mb"] > 0
    # The fit config alone, through zoo fit, retrains the same weights.
    again = tmp_path / "again"
    zoo_run(["fit", "--config", str(run.dir / FIT_FILE), "--run.dir", str(again)])
    release_run(again)
    mine, theirs = weights(run.dir), weights(again)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_the_dry_run_prints_every_run_and_its_size_and_only_selects(tmp_path, capsys, no_training):
    config = write_study(tmp_path / "tiny.yaml", seeds=[0, 1])
    assert main(["--config", config, "--output-dir", str(tmp_path / "out"), "--dry-run"]) == 0
    *lines, total = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["[1/4] reverse/t5/seed0", "[2/4] reverse/gpt/seed0",
                                                      "[3/4] reverse/t5/seed1", "[4/4] reverse/gpt/seed1"]
    assert all("non-embedding params, 4 steps," in line and "tokens" in line and "FLOPs" in line for line in lines)
    assert total.startswith("4 run(s):") and total.endswith("training FLOPs in all")
    assert not (tmp_path / "out").exists()  # nothing written
    assert main(["--config", config, "--output-dir", str(tmp_path / "out"), "--dry-run", "--only", "*/gpt/*"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()[:-1]] == \
        ["[1/2] reverse/gpt/seed0", "[2/2] reverse/gpt/seed1"]
    with pytest.raises(ValueError, match=r"--only \*/gpt2/\* matches no run; runs are named like 'reverse/t5/seed0'"):
        main(["--config", config, "--output-dir", str(tmp_path / "out"), "--only", "*/gpt2/*"])


def test_a_run_directory_of_another_config_is_refused_and_fresh_starts_over(tmp_path, capsys, no_training):
    config = write_study(tmp_path / "tiny.yaml", families=["gpt"])
    out = tmp_path / "out"
    (run,) = plan(load_comparison(config, output_dir=str(out)))
    prepare([run], fresh=False, threads=1)
    (run.dir / "checkpoints").mkdir()
    (run.dir / "checkpoints" / "last.ckpt").write_bytes(b"the old run's")
    with pytest.raises(ValueError) as error:
        main(["--config", config, "--output-dir", str(out), "--set", "train.lr=0.002"])
    message = str(error.value)
    assert "\n" not in message and "holds a run of another config" in message
    assert "model.init_args.lr: 0.001 -> 0.002" in message and "--fresh" in message
    assert (run.dir / "checkpoints" / "last.ckpt").read_bytes() == b"the old run's"  # untouched
    (fresh,) = plan(load_comparison(config, output_dir=str(out), overrides=["train.lr=0.002"]))
    prepare([fresh], fresh=True, threads=1)
    assert not (run.dir / "checkpoints").exists() and yaml.safe_load((run.dir / FIT_FILE).read_text()) == \
        fresh.fit_config
    assert read_result(run) is None  # the old plan's result is never read from the new run directory


@pytest.mark.parametrize("args, words", [
    (["--launcher", "kubernetes"], ["--launcher 'kubernetes' is not a launcher", "['local', 'slurm']"]),
    (["--jobs", "0"], ["--jobs 0 must be at least 1"]),
    (["--slurm", "timeout_min"], ["--slurm 'timeout_min': expected KEY=VALUE"]),
])
def test_bad_launch_options_fail_in_one_line(tmp_path, no_training, args, words):
    with pytest.raises(ValueError) as error:
        main(["--config", write_study(tmp_path / "tiny.yaml"), "--output-dir", str(tmp_path / "out"), *args])
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_the_slurm_launcher_without_submitit_says_how_to_install_it(tmp_path, monkeypatch, no_training):
    real = zoo.compare.launch.importlib.util.find_spec
    monkeypatch.setattr(zoo.compare.launch.importlib.util, "find_spec",
                        lambda name: None if name == "submitit" else real(name))
    with pytest.raises(ValueError, match=r"submitit, which is not installed; pip install 'zoo\[cluster\]'"):
        main(["--config", write_study(tmp_path / "tiny.yaml"), "--launcher", "slurm"])


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.mark.parametrize("changes, words", [
    ({"tasks": ["reverse", "palindromes"]}, ["unknown task 'palindromes'"]),
    ({"families": ["gpt", "gpt5"]}, ["unknown family 'gpt5'"]),
    ({"families": ["bert"], "tasks": [{"type": "addition", "max_len": 2}]},
     ["entry 'bert' cannot run task 'addition'", "as long as its source"]),
    ({"families": ["bert"], "tasks": [{"type": "lm", "files": "CORPUS", "tokenizer": "char"}]},
     ["entry 'bert' cannot run task 'lm'", "causal language model"]),
    ({"families": ["t5"], "tasks": [{"type": "lm", "files": "CORPUS", "tokenizer": "char"}]},
     ["entry 't5' cannot run task 'lm'", "span corruption"]),
    ({"tasks": [{"type": "seq2seq", "files": "BAD_JSONL"}]}, ["task 'seq2seq'", "bad.jsonl", "'target'"]),
    ({"tasks": [{**TINY_REVERSE, "max_len": 5, "test_min_len": 4}]}, ["task 'reverse'", "longer"]),
    ({"tasks": [{"type": "stdlib_docs", "tokenizer": "word"}]}, ["task 'stdlib_docs'", "'word'"]),
    ({"tasks": [{"type": "copy", "max_lenn": 3}]}, ["task 'copy'", "unknown option 'max_lenn'"]),
    ({"model": {"num_heads": 3}}, ["entry 't5' on task 'reverse'", "num_heads=3"]),
    ({"model": {"positoin": "rotary"}}, ["unknown field(s) ['positoin']"]),
    ({"trian": {}}, ["unknown key 'trian'"]),
    ({"budget": {"params": 10, "match": "num_layers"}}, ["off the target 10"]),
    ({"train": {"lr": "fast"}}, ["train.lr='fast' must be a number"]),
])
def test_bad_studies_fail_in_one_line_before_training(tmp_path, no_training, changes, words):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of some text" for i in range(300)))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"source": "a", "answer": "b"}])
    text = json.dumps(changes).replace("CORPUS", str(corpus)).replace("BAD_JSONL", bad)
    config = write_study(tmp_path / "bad.yaml", **json.loads(text))
    with pytest.raises(ValueError) as error:
        main(["--config", config, "--output-dir", str(tmp_path / "out")])
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert not (tmp_path / "out").exists()


def test_zoo_cli_prints_the_error_as_one_line(tmp_path, monkeypatch, no_training):
    monkeypatch.setattr(sys, "argv", ["zoo", "compare", "--config", write_study(tmp_path / "bad.yaml"),
                                      "--launcher", "ssh"])
    with pytest.raises(SystemExit) as exit_info:
        zoo_main()
    assert str(exit_info.value).startswith("zoo: error: --launcher 'ssh' is not a launcher")


def test_every_family_plans_every_kind_of_task_it_can_as_zoo_fits_task(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i}: some text about brackets and sorting" for i in range(300)))
    small = {"train_size": 32, "val_size": 8, "test_size": 8}
    config = write_study(
        tmp_path / "kinds.yaml", families=None,
        entries=[{"family": "t5", "tasks": ["reverse", "brackets"]}, {"family": "gpt"}, {"family": "llama"},
                 {"family": "bert", "tasks": ["reverse", "brackets"]}],
        model={"embed_dim": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "dropout": 0.0},
        tasks=[TINY_REVERSE, {"type": "brackets", "max_len": 6, **small},
               {"type": "lm", "files": str(corpus), "tokenizer": "char", "block_len": 16, "val_blocks": 2}],
    )
    runs = plan(load_comparison(config, output_dir=str(tmp_path / "out")))
    tasks = {(r.entry.name, r.task.name): r.fit_config["model"]["class_path"] for r in runs}
    assert tasks == {
        ("t5", "reverse"): "zoo.tasks.InstructionSeq2Seq", ("gpt", "reverse"): "zoo.tasks.InstructionLM",
        ("llama", "reverse"): "zoo.tasks.InstructionLM", ("bert", "reverse"): "zoo.tasks.InstructionMLM",
        ("t5", "brackets"): "zoo.tasks.T5Classifier", ("gpt", "brackets"): "zoo.tasks.GPTClassifier",
        ("llama", "brackets"): "zoo.tasks.GPTClassifier", ("bert", "brackets"): "zoo.tasks.BertClassifier",
        ("gpt", "lm"): "zoo.tasks.CausalLM", ("llama", "lm"): "zoo.tasks.CausalLM",
    }
    data = {r.task.name: r.fit_config["data"]["class_path"] for r in runs}
    assert data == {"reverse": "zoo.data.InstructionDataModule", "brackets": "zoo.data.LabelledTextDataModule",
                    "lm": "zoo.data.TextDataModule"}
    lm = next(r for r in runs if r.task.name == "lm")
    assert lm.fit_config["data"]["init_args"]["eval_blocks"] == 2  # validation: 2 blocks; test: the next 2


def test_the_llama_preset_is_named_in_the_fit_config_and_the_studys_fields_win(tmp_path):
    config = write_study(tmp_path / "presets.yaml", families=["gpt", "llama"],
                         model={"embed_dim": 16, "num_heads": 4, "num_kv_heads": 1, "num_layers": 1})
    gpt, llama = plan(load_comparison(config, output_dir=str(tmp_path / "out")))
    assert "preset" not in gpt.fit_config["model"]["init_args"]["config"]
    fields = llama.fit_config["model"]["init_args"]["config"]
    assert fields["preset"] == "llama" and (fields["num_heads"], fields["num_kv_heads"]) == (4, 1)
    resolved = GPTConfig.from_dict({**fields, "vocab_size": 30})
    assert (resolved.norm, resolved.activation, resolved.position, resolved.num_kv_heads) == \
        ("rmsnorm", "swiglu", "rotary", 1)


def test_variants_sweep_scale_and_overrides(tmp_path):
    config = write_study(
        tmp_path / "ablation.yaml", families=["gpt"], sweep={"position": ["learned", "rotary"]},
        variants=[{"name": "rmsnorm", "config": {"norm": "rmsnorm"}}], budget={"params": 20_000},
    )
    comparison = load_comparison(config, scale=2, overrides=["model.num_layers=2", "tasks.0.max_len=5"])
    assert [e.name for e in comparison.entries] == ["rmsnorm", "position=learned", "position=rotary"]
    assert comparison.entries[2].config == {"position": "rotary"}
    assert comparison.train.max_steps == 8 and comparison.budget.params == 40_000
    runs = plan(comparison)
    configs = [r.fit_config["model"]["init_args"]["config"] for r in runs]
    assert [c["num_layers"] for c in configs] == [2, 2, 2] and configs[0]["norm"] == "rmsnorm"
    assert all(abs(r.params - 40_000) <= 4_000 for r in runs)
    assert comparison.tasks[0].max_len == 5

    two = write_study(tmp_path / "two.yaml", families=["gpt", "t5"], sweep={"activation": ["relu", "swiglu"]})
    assert [e.name for e in load_comparison(two).entries] == ["gpt/activation=relu", "gpt/activation=swiglu",
                                                              "t5/activation=relu", "t5/activation=swiglu"]


def test_exponents_read_as_numbers(tmp_path):
    path = tmp_path / "numbers.yaml"
    path.write_text("tasks: [copy]\nfamilies: [gpt]\ntrain: {lr: 1e-3}\nbudget: {params: 2e5}\n")
    comparison = load_comparison(path)
    assert comparison.train.lr == 0.001 and comparison.budget.params == 200_000


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_studies_plan(path, tmp_path):
    seeds = load_comparison(path).seeds[:3]  # the others only change the data's seed (and cost a tokenizer each)
    comparison = load_comparison(path, output_dir=str(tmp_path), seeds=seeds)
    runs = plan(comparison)
    assert runs and len({r.name for r in runs}) == len(runs) == len({r.dir for r in runs})
    budget = comparison.budget
    if budget.params:
        assert all(abs(r.active_params - budget.params) <= budget.tolerance * budget.params for r in runs)


def test_shipped_studies_exist():
    assert {p.name for p in SHIPPED} >= {"seq2seq_families.yaml", "classification_families.yaml", "lm_ablations.yaml"}


# ---------------------------------------------------------------------------------------------
# End to end (slow: each run is a zoo fit process)


@pytest.mark.slow
def test_a_study_with_two_jobs_then_resumed_skips_what_is_done(tmp_path, capsys):
    config = write_study(tmp_path / "tiny.yaml", seeds=[0, 1])
    out = tmp_path / "out"
    assert main(["--config", config, "--output-dir", str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished\n") == 4 and "[1/4] t5 × reverse × seed 0: started" in printed
    table = (out / "results.md").read_text()
    assert "| entry | params | train tokens | train FLOPs | wall time (s) |" in table and "val exact match" in table
    assert "| t5 |" in table and "| gpt |" in table and "no result yet" not in table
    assert (out / "plots" / "reverse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["entry"], r["seed"]) for r in records] == [("t5", 0), ("gpt", 0), ("t5", 1), ("gpt", 1)]
    assert all(json.loads((Path(r["dir"]) / "job.json").read_text())["threads"] == 1 for r in records)
    assert main(["--config", config, "--output-dir", str(out), "--jobs", "2"]) == 0
    assert "4 of 4 run(s) finished earlier: skipped" in capsys.readouterr().out


def _retrain(run_dir: Path, into: Path) -> dict[str, torch.Tensor]:
    """The run's fit.yaml through zoo fit, uninterrupted, into ``into``: its final weights."""
    zoo_run(["fit", "--config", str(run_dir / FIT_FILE), "--run.dir", str(into)])
    release_run(into)
    return weights(into)


def _wait_for_training(run_dir: Path, timeout: float = 600) -> int:
    """Wait until the run is training and has saved a checkpoint; its process id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = read_run(run_dir)
        if record.get("status") == "running" and (run_dir / "checkpoints" / "last.ckpt").is_file():
            return int(record["pid"])
        time.sleep(0.2)
    raise AssertionError(f"{run_dir} never started training")


LONGER = {"max_steps": 60, "batch_size": 8, "val_every": 10, "warmup_steps": 1}


@pytest.mark.slow
def test_a_killed_study_resumes_each_run_from_its_last_checkpoint(tmp_path, one_thread):
    config = write_study(tmp_path / "tiny.yaml", families=["gpt"], train=LONGER)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "zoo.cli", "compare", "--config", config, "--output-dir", str(out)]
    study = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = out / "runs" / "reverse" / "gpt" / "seed0"
    _wait_for_training(run_dir)
    os.killpg(study.pid, signal.SIGKILL)  # the study and its job, without a chance to save
    study.wait()
    assert read_run(run_dir)["status"] == "running"  # killed: nothing recorded its end
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    record = read_run(run_dir)
    assert record["status"] == "finished" and record["global_step"] == 60 and record["resumes"]
    # not from the start: from whichever checkpoint (every 10 steps) the kill left last
    resumed_at = [int(step) for step in re.findall(r"resuming at step (\d+) of 60", (run_dir / "job.log").read_text())]
    assert len(resumed_at) == 1 and resumed_at[0] in (10, 20, 30, 40, 50), resumed_at
    mine, straight = weights(run_dir), _retrain(run_dir, tmp_path / "straight")
    assert all(torch.equal(mine[k], straight[k]) for k in mine)  # the resumed run is the uninterrupted one


@pytest.mark.slow
def test_the_slurm_launcher_runs_a_job_array_through_submitit(tmp_path):
    pytest.importorskip("submitit")
    comparison = load_comparison(write_study(tmp_path / "tiny.yaml"), output_dir=str(tmp_path / "out"))
    said: list[str] = []
    records = run_comparison(comparison, launcher="slurm", jobs=2, slurm={"cluster": "local", "timeout_min": 20},
                             log=said.append)
    assert [(r["entry"], r["steps"]) for r in records] == [("t5", 4), ("gpt", 4)]
    assert said[0].startswith("submitted 2 run(s) as job array") and sum("finished" in s for s in said) == 2
    assert (tmp_path / "out" / "slurm").is_dir()


@pytest.mark.slow
def test_a_warned_submitit_job_saves_its_checkpoint_and_its_requeued_job_resumes(tmp_path):
    submitit = pytest.importorskip("submitit")
    from zoo.compare.job import CompareJob

    comparison = load_comparison(write_study(tmp_path / "tiny.yaml", families=["gpt"], train=LONGER),
                                 output_dir=str(tmp_path / "out"))
    (run,) = plan(comparison)
    prepare([run], fresh=False, threads=1)
    executor = submitit.AutoExecutor(folder=tmp_path / "slurm", cluster="local")
    executor.update_parameters(timeout_min=20)
    job = executor.submit(CompareJob(threads=1), str(run.dir))
    pid = _wait_for_training(run.dir)
    os.kill(pid, signal.SIGUSR2)  # what SLURM sends signal_delay_s before the time limit
    assert job.result() == str(run.dir)
    record = read_run(run.dir)
    assert record["status"] == "finished" and record["global_step"] == 60 and len(record["resumes"]) == 1
    assert read_result(run) is not None
    log = "".join(p.read_text() for p in (tmp_path / "slurm").glob("*_log.*"))
    # Stopped at a step with last.ckpt at that very step (saved on the signal, or just before it by
    # validation: then there was nothing left to save), requeued, and resumed from there.
    stops = re.findall(r"\(stopped, step (\d+)\); resume with --ckpt_path last \(last\.ckpt", log)
    assert len(stops) == 1 and 0 < int(stops[0]) < 60, log[-3000:]
    assert "Requeued job" in log and f"resuming at step {stops[0]} of 60" in log, log[-3000:]
    mine, straight = weights(run.dir), _retrain(run.dir, tmp_path / "straight")
    assert all(torch.equal(mine[k], straight[k]) for k in mine)


@pytest.mark.slow
def test_every_family_trains_every_kind_of_task_it_can(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i}: some text about brackets and sorting" for i in range(300)))
    small = {"train_size": 32, "val_size": 8, "test_size": 8}
    config = write_study(
        tmp_path / "kinds.yaml", families=None,
        entries=[{"family": "t5", "tasks": ["reverse", "brackets"]}, {"family": "gpt"}, {"family": "llama"},
                 {"family": "bert", "tasks": ["reverse", "brackets"]}],
        model={"embed_dim": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "dropout": 0.0},
        tasks=[TINY_REVERSE, {"type": "brackets", "max_len": 6, **small},
               {"type": "lm", "files": str(corpus), "tokenizer": "char", "block_len": 16, "val_blocks": 2}],
        train={"max_steps": 2, "batch_size": 4, "val_every": 2, "warmup_steps": 1},
    )
    records = run_comparison(load_comparison(config, output_dir=str(tmp_path / "out")), jobs=2, log=lambda _: None)
    assert len(records) == 10
    for record in records:
        metrics = record["metrics"]
        if record["kind"] == "seq2seq":
            assert 0 <= metrics["test_exact_match"] <= 1 and metrics["test_cer"] >= 0
        elif record["kind"] == "classification":
            assert 0 <= metrics["test_accuracy"] <= 1 and 0 <= metrics["test_macro_f1"] <= 1
        else:
            assert 0 < metrics["test_bpb"] < 20 and metrics["test_perplexity"] > 1
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == ["brackets.png", "lm.png", "reverse.png"]
