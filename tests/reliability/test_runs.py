"""A run is one directory (``zoo.runs``): named and versioned, self-contained, resumable by name and
never silently fresh, one writer at a time, and a resume that changes what it trains is refused or
said out loud."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.checkpoints import checkpoint_tokenizer, newest_checkpoint, run_checkpoint
from zoo.cli import main, run
from zoo.data.tokenizers import load_tokenizer

from .conftest import EVERY, callbacks, fit_args, run_zoo, start_zoo, wait_for_step, zoo_env

RUN = Path("runs/gpt_clm")


def _main(monkeypatch, args: list[str]) -> str:
    """``zoo`` through the console script's main: the one-line message it exits with."""
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code


def test_a_fresh_run_fills_its_own_version_directory(workdir, corpus):
    run(fit_args("clm", corpus, steps=4))
    run(fit_args("clm", corpus, steps=4))  # the same command again: a new version, nothing overwritten
    first, second = workdir / RUN / "version_0", workdir / RUN / "version_1"
    for directory in (first, second):
        record = json.loads((directory / "run.json").read_text())
        assert record["status"] == "finished" and record["global_step"] == 4
        assert record["final_metrics"]["val_loss"] > 0 and record["commit"]
        assert record["data"]["files"][0]["sha256"] and record["data"]["files"][0]["bytes"] == corpus.stat().st_size
        assert (directory / "config.yaml").is_file() and (directory / "tokenizer.json").is_file()
        assert torch.load(directory / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
        rows = list(csv.DictReader((directory / "metrics.csv").open()))
        assert rows and "train_loss" in rows[0]
    assert sorted(p.name for p in (workdir / RUN).iterdir()) == ["version_0", "version_1"]
    assert not list((workdir / RUN / "version_1" / "checkpoints").glob("*-v1.ckpt")), "no version counter"


def test_the_saved_config_retrains_the_same_run(workdir, corpus):
    run(fit_args("clm", corpus, steps=4))
    first = workdir / RUN / "version_0"
    run(["fit", "--config", str(first / "config.yaml")])
    second = workdir / RUN / "version_1"
    a = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ckpt_path_last_without_anything_to_resume_refuses_or_starts_fresh_when_asked(workdir, corpus, monkeypatch):
    message = _main(monkeypatch, [*fit_args("clm", corpus), "--ckpt_path", "last"])
    assert message.startswith("zoo: error: --ckpt_path last: there is no run named 'gpt_clm' under runs/ to resume")
    assert not (workdir / "runs").exists(), "a refused command leaves no empty run directory"
    run([*fit_args("clm", corpus, steps=2), "--ckpt_path", "last_or_new"])
    assert json.loads((workdir / RUN / "version_0" / "run.json").read_text())["global_step"] == 2


def test_resume_takes_the_newest_checkpoint_by_step_whichever_file_holds_it(workdir, corpus):
    run(fit_args("clm", corpus, steps=6))
    checkpoints = workdir / RUN / "version_0" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    older = {**last, "global_step": 3}
    torch.save(older, checkpoints / "last.ckpt")  # as if last.ckpt were written only every N steps
    newest = [p for p in checkpoints.glob("best-*.ckpt")]
    assert newest and all(torch.load(p, weights_only=True)["global_step"] > 3 for p in newest)
    (checkpoints / "broken.ckpt").write_bytes(b"PK\x03\x04 half a zip")  # unreadable: skipped, not chosen
    found, step = newest_checkpoint(checkpoints)
    assert found.name.startswith("best-") and step == torch.load(found, weights_only=True)["global_step"]
    assert run_checkpoint(workdir / RUN) == found, "a run name stands for its newest version's newest checkpoint"


def test_last_ckpt_is_written_with_every_best_checkpoint(workdir, corpus):
    # every_n_train_steps 0: last.ckpt only at events; validation every 4 steps writes a best checkpoint.
    run([*fit_args("clm", corpus, steps=9), "--last_checkpoint.every_n_train_steps", "0",
         "--trainer.val_check_interval", "4"])
    checkpoints = workdir / RUN / "version_0" / "checkpoints"
    steps = sorted(torch.load(p, weights_only=True)["global_step"] for p in checkpoints.glob("*.ckpt"))
    assert steps[-1] == 9 and torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 9


def test_a_killed_run_resumes_by_name_and_its_metrics_continue(workdir, corpus, zoo_cache):
    args = [*fit_args("clm", corpus), *callbacks(workdir, delay=0.3)]
    process = start_zoo(args, cwd=workdir, zoo_cache=zoo_cache)
    wait_for_step(process, workdir / "steps.jsonl", EVERY + 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    directory = workdir / RUN / "version_0"
    assert json.loads((directory / "run.json").read_text())["status"] == "running"  # killed: never finished
    saved = torch.load(directory / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    result = run_zoo([*fit_args("clm", corpus), "--ckpt_path", "last", "--trainer.enable_progress_bar", "true"],
                     cwd=workdir, zoo_cache=zoo_cache)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (workdir / RUN / "version_1").exists(), "the resume continues the same directory"
    record = json.loads((directory / "run.json").read_text())
    assert record["status"] == "finished" and record["resumes"][0]["ckpt_path"].endswith(".ckpt")
    train_steps = [int(r["step"]) for r in csv.DictReader((directory / "metrics.csv").open()) if r.get("train_loss")]
    assert train_steps == sorted(train_steps) and len(train_steps) == len(set(train_steps)), \
        f"rows of the steps after the checkpoint (step {saved}) were redone, not duplicated: {train_steps}"
    assert "step 14/14" in result.stdout and f"resuming at step {saved}" in result.stdout  # plain progress lines
    assert "Run directory: runs/gpt_clm/version_0" in result.stdout + result.stderr


def test_two_writers_never_share_a_run_directory(workdir, corpus, zoo_cache, monkeypatch):
    run(fit_args("clm", corpus, steps=2))
    lock = workdir / RUN / "version_0" / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); f.write('pid 999 on test'); f.flush(); "
                               "print('locked', flush=True); time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE, text=True, env=zoo_env(zoo_cache))
    try:
        assert holder.stdout.readline().strip() == "locked", "the finished run still held its directory's lock"
        message = _main(monkeypatch, [*fit_args("clm", corpus, steps=4), "--ckpt_path", "last"])
        assert message.startswith(f"zoo: error: run directory {(workdir / RUN / 'version_0').resolve()} is in use by")
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(("change", "refused"), [
    (["--model.init_args.config.num_layers", "3"], "model.init_args.config.num_layers=3"),
    (["--data.init_args.max_seq_len", "16"], "data.init_args.max_seq_len=16"),
])
def test_a_resume_that_changes_the_model_or_data_is_refused(workdir, corpus, monkeypatch, change, refused):
    run(fit_args("clm", corpus, steps=2))
    message = _main(monkeypatch, [*fit_args("clm", corpus, steps=4), "--ckpt_path", "last", *change])
    last = RUN / "version_0" / "checkpoints" / "last.ckpt"
    assert message.startswith(f"zoo: error: --ckpt_path {last}: cannot resume")
    assert refused in message and "--model.init_args.pretrained" in message and "\n" not in message


def test_a_resume_that_changes_the_learning_rate_applies_it_and_says_so(workdir, corpus, capsys):
    run(fit_args("clm", corpus, steps=2))
    capsys.readouterr()
    cli = run([*fit_args("clm", corpus, steps=4), "--ckpt_path", "last", "--model.init_args.lr", "1e-5"])
    err = capsys.readouterr().err
    assert "lr=1e-05 (was 0.001)" in err and "applied, so the run is no longer an exact continuation" in err
    optimizer = cli.trainer.optimizers[0]
    assert max(g["initial_lr"] for g in optimizer.param_groups) == pytest.approx(1e-5)
    assert max(g["lr"] for g in optimizer.param_groups) <= 1e-5 * (1 + 1e-9)


def test_a_weights_only_checkpoint_points_to_pretrained_before_any_data_work(workdir, corpus, monkeypatch):
    run(fit_args("clm", corpus, steps=2))
    full = torch.load(workdir / RUN / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    weights_only = {k: v for k, v in full.items() if k not in ("optimizer_states", "loops", "lr_schedulers")}
    torch.save(weights_only, workdir / "weights.ckpt")
    message = _main(monkeypatch, [*fit_args("clm", corpus), "--ckpt_path", "weights.ckpt",
                                  "--data.init_args.data_files", "no_such_file.txt"])
    assert message == ("zoo: error: --ckpt_path weights.ckpt: holds weights only (no optimizer or loop state to "
                       "resume; written by zoo convert or with save_weights_only); to train from these weights use "
                       "--model.init_args.pretrained weights.ckpt")


def test_a_checkpoint_copied_alone_carries_its_tokenizer(workdir, corpus, zoo_cache, tmp_path):
    run(fit_args("clm", corpus, steps=2))
    lonely = tmp_path / "elsewhere" / "model.ckpt"
    lonely.parent.mkdir()
    shutil.copy(workdir / RUN / "version_0" / "checkpoints" / "last.ckpt", lonely)
    shutil.rmtree(zoo_cache / "tokenizers")  # the cache is only a cache
    checkpoint = torch.load(lonely, weights_only=True)
    tokenizer = checkpoint_tokenizer(checkpoint)
    assert tokenizer.fingerprint == load_tokenizer(workdir / RUN / "version_0" / "tokenizer.json").fingerprint
    fresh_cache = tmp_path / "empty_cache"
    env_run = lambda *args: subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=tmp_path,  # noqa: E731
                                           env=zoo_env(fresh_cache), capture_output=True, text=True, timeout=300)
    generated = env_run("generate", str(lonely), "--prompt", "alpha", "--max-new-tokens", "4")
    assert generated.returncode == 0 and generated.stdout.strip(), generated.stderr[-2000:]
    resumed = env_run(*fit_args("clm", corpus, steps=3), "--ckpt_path", str(lonely), "--run.dir", "resumed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_predict_writes_into_the_run_with_the_text(workdir, corpus):
    run(fit_args("clm", corpus, steps=2))
    run(["predict", *fit_args("clm", corpus)[1:], "--ckpt_path", str(workdir / RUN)])
    lines = (workdir / RUN / "version_0" / "predict" / "last.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records and all(r["text"] and set(r["text"]) <= set(corpus.read_text()) for r in records)
    assert json.loads((workdir / RUN / "version_0" / "run.json").read_text())["subcommand"] == "fit", \
        "predicting leaves the training run's record alone"


def test_a_resume_on_data_files_whose_contents_changed_is_refused(workdir, corpus, monkeypatch):
    mine = workdir / "corpus.txt"
    mine.write_text(corpus.read_text())
    args = fit_args("clm", corpus, steps=2)
    args[args.index(str(corpus))] = str(mine)
    run(args)
    mine.write_text(corpus.read_text() + "omicron pi rho sigma\n")  # the same name, other contents
    message = _main(monkeypatch, [*args, "--trainer.max_steps", "4", "--ckpt_path", "last"])
    assert message.startswith(f"zoo: error: the checkpoint was trained on other data than this run reads: {mine} "
                              f"(then {len(corpus.read_bytes())} bytes) changed")
    assert "--model.init_args.pretrained" in message
