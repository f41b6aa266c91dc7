"""Comparisons you can trust: every entry paired by seed with a named baseline (verdicts with the
smallest detectable difference), a noise floor from repeats of the baseline, grids tuned on
validation, budgets that say what they match, and reports drawn from ``results.json`` alone.

Fast tests check the pieces on plans and on made-up run records whose answer is known; the slow
ones train studies whose answer is known (entries that differ only in name, a broken entry)."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import yaml

import zoo.compare.launch
from zoo.commands.compare import main
from zoo.compare import analyse, choose, load_comparison, plan, render, study_settings, write_readme, write_reports
from zoo.compare.plan import INIT_SEED_STEP, waiting
from zoo.compare.report import markdown_report, readme_markers

from .conftest import write_study

#: A language-modelling task on the built-in corpus, characters, tiny blocks: plans in a second.
TINY_LM = {"type": "lm", "tokenizer": "char", "block_len": 32, "val_blocks": 16, "max_documents": 300}


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although it should not have")

    monkeypatch.setattr(zoo.compare.launch, "_local", fail)
    monkeypatch.setattr(zoo.compare.launch, "_slurm", fail)


def lm_study(path: Path, **changes) -> str:
    study = {"families": None, "entries": [{"name": "base", "family": "gpt"}, {"name": "same", "family": "gpt"}],
             "tasks": [TINY_LM], "seeds": 3, "baseline": "base", **changes}
    return write_study(path, **study)


# ---------------------------------------------------------------------------------------------
# Bad input: one line, before anything trains


@pytest.mark.parametrize("changes, words", [
    ({"baseline": "gpt2"}, ["baseline 'gpt2' is not an entry (did you mean 'gpt'?)", "entries are ['t5', 'gpt']"]),
    ({"baseline": "gpt", "seeds": [0]},
     ["baseline 'gpt' asks for paired verdicts", "1 seed(s) is too few", "intervals need >= 2 seeds and verdicts >= 3",
      "--set baseline=null"]),
    ({"baseline": "gpt", "seeds": 2}, ["2 seed(s) is too few for a paired verdict"]),
    ({"train": {"lrr": [1.0e-3, 2.0e-3]}}, ["train.lrr: a grid over a key that does not exist (did you mean 'lr'?)"]),
    ({"model": {"embed_dimm": [16, 32]}}, ["a grid over 'embed_dimm', which is not a config field of t5",
                                           "did you mean 'embed_dim'?"]),
    ({"train": {"lr": [1.0e-3, "fast"]}}, ["train.lr='fast' must be a number"]),
    ({"train": {"lr": []}}, ["train.lr: a grid needs at least one value"]),
    ({"repeat_baseline": 2}, ["repeat_baseline repeats the baseline: name one"]),
    ({"baseline": "gpt", "seeds": 3, "repeat_baseline": -1}, ["repeat_baseline=-1 must be a number of repeats"]),
    ({"smallest_effect": {"bits": 0.01}}, ["smallest_effect: 'bits' is not a metric", "'bpb'"]),
    ({"smallest_effect": {"test_accuracy": -0.1}}, ["smallest_effect.test_accuracy=-0.1 must be a number >= 0"]),
    ({"tune": {"seeds": 1}}, ["tune: no value of the study is a grid"]),
    ({"train": {"lr": [1.0e-3, 2.0e-3]}, "tune": {"metric": "val_accuracy"}},
     ["tune.metric='val_accuracy': task 'reverse' (seq2seq) reports ['exact_match', 'cer']"]),
    ({"variants": [{"name": "rms", "config": {"norm": "rmsnorm"}, "only": ["gpt5"]}]},
     ["variant 'rms': only must list some of the entries ['t5', 'gpt']"]),
    ({"families": None, "entries": [{"family": "gpt", "train": {"lr": 0}}]}, ["lr=0 must be > 0"]),
])
def test_bad_statistics_and_grid_requests_fail_in_one_line(tmp_path, no_training, changes, words):
    config = write_study(tmp_path / "bad.yaml", **changes)
    with pytest.raises(ValueError) as error:
        main(["--config", config, "--output-dir", str(tmp_path / "out")])
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert not (tmp_path / "out").exists()


def test_a_variant_baseline_gives_each_crossed_entry_its_own(tmp_path):
    config = write_study(tmp_path / "groups.yaml", seeds=3, baseline="base", repeat_baseline=1,
                         variants=[{"name": "base", "config": {}}, {"name": "rms", "config": {"norm": "rmsnorm"}},
                                   {"name": "gelu", "config": {"activation": "gelu"}, "only": ["t5"]}])
    entries = load_comparison(config).entries
    assert [(e.name, e.group, e.baseline, e.repeat) for e in entries] == [
        ("t5/base", "t5", "t5/base", 0), ("t5/rms", "t5", "t5/base", 0), ("t5/gelu", "t5", "t5/base", 0),
        ("gpt/base", "gpt", "gpt/base", 0), ("gpt/rms", "gpt", "gpt/base", 0),
        ("t5/base-repeat1", "t5", "t5/base", 1), ("gpt/base-repeat1", "gpt", "gpt/base", 1)]
    missing = write_study(tmp_path / "missing.yaml", seeds=3, baseline="base",
                          variants=[{"name": "base", "config": {}, "only": ["t5"]}, {"name": "rms", "config": {}}])
    with pytest.raises(ValueError, match="entry 'gpt' has no variant 'base' to be compared with"):
        load_comparison(missing)


# ---------------------------------------------------------------------------------------------
# What the plan pairs


def test_entries_share_each_seed_whole_and_a_repeat_moves_only_its_initialisation(tmp_path):
    config = lm_study(tmp_path / "pairs.yaml", repeat_baseline=1,
                      entries=[{"name": "base", "family": "gpt"}, {"name": "same", "family": "gpt"},
                               {"name": "rms", "family": "gpt", "config": {"norm": "rmsnorm"}}])
    runs = plan(load_comparison(config, output_dir=str(tmp_path / "out")))
    assert [r.name for r in runs[:4]] == ["lm/base/seed0", "lm/same/seed0", "lm/rms/seed0", "lm/base-repeat1/seed0"]
    for seed in (0, 1, 2):
        base, same, rms, repeat = (r for r in runs if r.seed == seed)
        # The data (split, order, masks) of one seed is every entry's, the repeat's included ...
        assert base.fit_config["data"] == same.fit_config["data"] == rms.fit_config["data"] == \
            repeat.fit_config["data"] and base.fit_config["data"]["init_args"]["seed"] == seed
        # ... and so is the initialisation seed, but for the repeat's.
        assert base.init_seed == same.init_seed == rms.init_seed == seed
        assert repeat.init_seed == seed + INIT_SEED_STEP
        # Entries that differ only in name are one fit config: bitwise the same training.
        strip = [{**r.fit_config, "run": None} for r in (base, same, repeat)]
        assert strip[0] == strip[1] and {**strip[2], "seed_everything": seed} == strip[0]
        assert rms.fit_config["model"]["init_args"]["config"]["norm"] == "rmsnorm"


def test_a_grid_runs_every_value_on_the_tuning_seed_then_the_chosen_one_on_the_rest(tmp_path):
    config = lm_study(tmp_path / "grid.yaml", repeat_baseline=1, train={"max_steps": 4, "lr": [1.0e-3, 4.0e-3]},
                      entries=[{"name": "base", "family": "gpt"},
                               {"name": "wide", "family": "gpt", "config": {"ffn_dim": [32, 64]}}])
    comparison = load_comparison(config, output_dir=str(tmp_path / "out"))
    assert comparison.entries[1].grid == {"train.lr": [1e-3, 4e-3], "model.ffn_dim": [32, 64]}
    first = plan(comparison)
    assert [r.name for r in first] == [
        "lm/base/lr=0.001/seed0", "lm/base/lr=0.004/seed0", "lm/wide/lr=0.001,ffn_dim=32/seed0",
        "lm/wide/lr=0.001,ffn_dim=64/seed0", "lm/wide/lr=0.004,ffn_dim=32/seed0", "lm/wide/lr=0.004,ffn_dim=64/seed0"]
    assert first[1].dir.parts[-3:] == ("base", "lr=0.004", "seed0")
    assert [r.fit_config["model"]["init_args"]["lr"] for r in first[:2]] == [1e-3, 4e-3]
    assert first[3].fit_config["model"]["init_args"]["config"]["ffn_dim"] == 64
    assert waiting(comparison, {}) == 2 + 2 + 3  # base and wide on seeds 1 and 2; the repeat on 0, 1, 2
    choices = {("lm", "base"): {"train.lr": 4e-3}, ("lm", "wide"): {"train.lr": 1e-3, "model.ffn_dim": 64}}
    second = plan(comparison, choices=choices)
    assert waiting(comparison, choices) == 0
    assert [r.name for r in second if r.name not in {f.name for f in first}] == [
        "lm/base-repeat1/lr=0.004/seed0", "lm/base/lr=0.004/seed1", "lm/wide/lr=0.001,ffn_dim=64/seed1",
        "lm/base-repeat1/lr=0.004/seed1", "lm/base/lr=0.004/seed2", "lm/wide/lr=0.001,ffn_dim=64/seed2",
        "lm/base-repeat1/lr=0.004/seed2"]
    tuned_all = load_comparison(config, output_dir=str(tmp_path / "out"), overrides=["tune={seeds: all}"])
    assert len(plan(tuned_all)) == 3 * 6 and waiting(tuned_all, {}) == 3  # only the repeats wait


# ---------------------------------------------------------------------------------------------
# Made-up run records whose answer is known


def record(task: str, kind: str, entry: str, seed: int, metrics: dict[str, float], *, point: str = "",
           flops: float = 1e9, repeat: int = 0, diverged: str | None = None) -> dict:
    """A run record as ``zoo.compare.results.read_result`` writes it."""
    val = {k: v for k, v in metrics.items() if k.startswith("val_")}
    return {"key": f"{task}/{entry}/{point + '/' if point else ''}seed{seed}", "entry": entry, "family": "gpt",
            "task": task, "kind": kind, "seed": seed, "init_seed": seed + 1000 * repeat, "point": point,
            "grid_point": {}, "group": "", "baseline": "base", "repeat": repeat, "diverged": diverged,
            "params": 1000, "active_params": 1000, "config": {}, "dir": "", "steps": 4, "tokens": 4096.0,
            "flops": flops, "train_time_s": 1.0, "eval_time_s": 0.5, "peak_mem_mb": 400.0, "memory": "cpu peak rss",
            "device": "cpu", "metrics": {} if diverged else metrics,
            "curve": [] if diverged else [{"step": 2, "tokens": 2048.0, "flops": flops / 2, **val},
                                          {"step": 4, "tokens": 4096.0, "flops": flops, **val}],
            "finished_at": "2026-01-02T03:04:05", "commit": "abc", "code": {"zoo_fingerprint": "f00"},
            "machine": {"host": "h", "cpu": "Test CPU", "cpus": 2, "gpu": None, "torch": "2.13", "threads": 1}}


BASE = [2.30, 2.45, 2.28, 2.51, 2.37]


def known_records(settings: dict) -> list[dict]:
    """Five seeds of known differences on ``lm``: same (identical), broken (+1.0 and noisy), shifted
    (exactly +0.1 on every seed: no spread), tiny (+0.001 with little spread: real but negligible),
    noisy (±0.2 around 0: inconclusive), diverged (on seed 3), and one repeat of base."""
    shifts = {"same": [0.0] * 5, "broken": [1.0, 1.2, 0.9, 1.1, 1.05], "shifted": [0.1] * 5,
              "tiny": [0.0010, 0.0011, 0.0009, 0.0010, 0.00105], "noisy": [0.2, -0.25, 0.15, -0.2, 0.1],
              "diverged": [0.0] * 5, "base-repeat1": [0.02, -0.03, 0.01, 0.03, -0.02]}
    records = []
    for seed in range(5):
        for name, shift in [("base", [0.0] * 5), *shifts.items()]:
            value = BASE[seed] + shift[seed]
            records.append(record("lm", "lm", name, seed,
                                  {"val_bpb": value + 0.01, "val_perplexity": 2 ** value, "test_bpb": value},
                                  flops=2e9 if name == "broken" else 1e9, repeat=int(name.endswith("repeat1")),
                                  diverged="loss is nan at step 3" if name == "diverged" and seed == 3 else None))
    return records


@pytest.fixture
def known(tmp_path):
    names = ["base", "same", "broken", "shifted", "tiny", "noisy", "diverged"]
    config = lm_study(tmp_path / "known.yaml", seeds=5, repeat_baseline=1,
                      entries=[{"name": n, "family": "gpt"} for n in names])
    settings = study_settings(load_comparison(config, output_dir=str(tmp_path / "out")))
    return settings, known_records(settings)


def test_known_differences_read_as_they_should(known):
    settings, records = known
    (table,) = analyse(settings, records)["tables"]
    (paired,) = table["comparisons"]
    assert paired["baseline"] == "base" and paired["seeds"] == [0, 1, 2, 3, 4]
    assert paired["excluded"] == {"diverged": "diverged on seed(s) 3"}  # and it costs the others no seed
    test = paired["metrics"]["test_bpb"]
    verdicts = {name: c["verdict"] for name, c in test.items()}
    assert verdicts == {"same": "no detectable difference", "broken": "worse", "shifted": "worse",
                        "tiny": "negligible", "noisy": "inconclusive"}
    assert test["same"]["note"] == "identical on every seed" and test["same"]["ci_low"] == test["same"]["ci_high"] == 0
    assert test["shifted"]["p_value"] == 0.0 and test["shifted"]["detectable_difference"] == 0.0  # no crash, exact
    assert test["noisy"]["detectable_difference"] > 0.005 and test["broken"]["correction"] == "holm"
    assert math.isclose(test["broken"]["difference"], statistics.fmean([1.0, 1.2, 0.9, 1.1, 1.05]))
    # Holm across the five entries of the table: the second smallest p-value (the smallest is shifted's exact 0)
    # is multiplied by four.
    ps = sorted(c["p_value"] for c in test.values())
    assert math.isclose(min(c["p_adjusted"] for c in test.values() if c["p_value"] > 0), 4 * ps[1]) or ps[1] == 0
    assert set(paired["metrics"]) == {"val_bpb", "test_bpb"}  # perplexity has no smallest effect by default
    assert table["warnings"] == [
        "training FLOPs differ by 2.00x (base 1G, broken 2G) and the budget does not match them (budget.flops): the "
        "differences are not only the architectures'"]


def test_the_noise_floor_is_the_spread_of_a_paired_difference_of_the_same_model(known):
    settings, records = known
    (table,) = analyse(settings, records)["tables"]
    (floor,) = table["noise_floor"]
    assert floor["baseline"] == "base" and floor["repeats"] == ["base-repeat1"]
    test = floor["metrics"]["test_bpb"]
    d = [0.02, -0.03, 0.01, 0.03, -0.02]
    # sigma_init^2 pooled within seeds (one degree of freedom each), a paired difference's sd = sqrt(2) sigma_init:
    # for one repeat that is the root mean square of the differences.
    assert math.isclose(test["sd_difference"], math.sqrt(statistics.fmean(x * x for x in d)), rel_tol=1e-9)
    assert test["degrees_of_freedom"] == 5
    assert math.isclose(test["baseline_sd_over_seeds"], statistics.stdev(BASE), rel_tol=1e-9)
    needed = [e["seeds"] for e in test["seeds_needed"]]
    assert [e["effect"] for e in test["seeds_needed"]] == pytest.approx([0.005, 0.01, 0.02, 0.05])
    assert needed == sorted(needed, reverse=True) and needed[-1] >= 3
    assert test["repeats"]["base-repeat1"]["verdict"] in ("no detectable difference", "inconclusive")


def test_a_grid_picks_the_best_validation_value_never_the_test_one(tmp_path):
    config = lm_study(tmp_path / "grid.yaml", train={"lr": [1.0e-3, 2.0e-3, 4.0e-3]})
    settings = study_settings(load_comparison(config, output_dir=str(tmp_path / "out")))
    # base: 2e-3 is best on validation, 1e-3 on test; 4e-3 diverged.
    base = [record("lm", "lm", "base", 0, {"val_bpb": 2.5, "test_bpb": 2.0}, point="lr=0.001"),
            record("lm", "lm", "base", 0, {"val_bpb": 2.3, "test_bpb": 2.9}, point="lr=0.002"),
            record("lm", "lm", "base", 0, {}, point="lr=0.004", diverged="loss is nan")]
    # same: 4e-3 best, at the grid's edge.
    same = [record("lm", "lm", "same", 0, {"val_bpb": v, "test_bpb": 1.0}, point=p)
            for p, v in (("lr=0.001", 2.5), ("lr=0.002", 2.4), ("lr=0.004", 2.2))]
    choices, tuning = choose(settings, base + same[:2])
    assert choices == {("lm", "base"): {"train.lr": 0.002}}  # same waits for its third grid run
    assert [t["status"] for t in tuning] == ["chosen", "waiting"]
    choices, tuning = choose(settings, base + same)
    assert choices == {("lm", "base"): {"train.lr": 0.002}, ("lm", "same"): {"train.lr": 0.004}}
    assert [p["diverged"] for p in tuning[0]["points"]] == [False, False, True]
    assert [t["edge"] for t in tuning] == [False, True]
    # Higher is better for exact match: the largest validation value wins.
    seq = write_study(tmp_path / "seq.yaml", families=["gpt"], train={"lr": [1.0e-3, 2.0e-3]})
    seq_settings = study_settings(load_comparison(seq))
    runs = [record("reverse", "seq2seq", "gpt", 0, {"val_exact_match": v, "test_exact_match": 1 - v}, point=p)
            for p, v in (("lr=0.001", 0.9), ("lr=0.002", 0.4))]
    assert choose(seq_settings, runs)[0] == {("reverse", "gpt"): {"train.lr": 0.001}}


def test_the_report_is_redrawn_from_results_json_alone(known, tmp_path):
    settings, records = known
    out = tmp_path / "out"
    write_reports(settings, records, out, command="zoo compare --config known.yaml")
    first = (out / "results.md").read_text()
    summary = json.loads((out / "results.json").read_text())
    assert summary["runs"] == records and summary["command"] == "zoo compare --config known.yaml"
    assert summary["provenance"]["zoo_fingerprint"] and "commit" in summary["provenance"]
    assert summary["tables"][0]["comparisons"][0]["metrics"]["test_bpb"]["broken"]["verdict"] == "worse"
    # Every number the table shows is in results.json: all seeds' values and each comparison's as_dict().
    row = next(r for r in summary["tables"][0]["rows"] if r["entry"] == "broken")
    assert row["values"]["test_bpb"] == pytest.approx([b + s for b, s in zip(BASE, [1.0, 1.2, 0.9, 1.1, 1.05],
                                                                          strict=True)])
    for path in [out / "results.md", out / "results.csv", *(out / "plots").iterdir()]:
        path.unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "results.md").read_text() == first == markdown_report(summary)
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["lm-paired.png", "lm.png"]
    assert (out / "plots" / "lm-paired.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| broken | **worse** +1.050 [" in first and "detects ≥" in first
    assert "| same | **no detectable difference** +0.000 [+0.000, +0.000] · no spread" in first
    assert "#### Noise floor: base against 1 repeat(s) of itself" in first
    assert "diverged: diverged on seed(s) 3; left out of the statistics" in first
    assert "| diverged (diverged on seed 3) |" in first
    assert "**Warning:** training FLOPs differ by 2.00x" in first and "2-core Test CPU CPU" in first


def test_the_readme_table_is_written_between_the_studys_markers(known, tmp_path):
    settings, records = known
    out = tmp_path / "out"
    summary = write_reports(settings, records, out, command="zoo compare --config configs/compare/tiny.yaml --jobs 2")
    readme = tmp_path / "README.md"
    begin, end = readme_markers("tiny")
    readme.write_text(f"# zoo\n\nbefore\n{begin}\nold table\n{end}\nafter\n")
    write_readme(summary, "runs/compare/tiny", readme)
    text = readme.read_text()
    assert text.startswith("# zoo\n\nbefore\n" + begin + "\nGenerated by `zoo compare report runs/compare/tiny "
                           "--readme README.md` from the results of `zoo compare --config configs/compare/tiny.yaml "
                           "--jobs 2` (finished 2026-01-02; commit ")
    assert text.endswith(f"{end}\nafter\n") and "old table" not in text
    assert "2-core Test CPU CPU, torch 2.13, 1 thread(s) per run; 40 runs)" in text
    assert "| broken | 1k | 2G | 4.1k | 3.432 ± 0.200 | +1.050 [+0.911, +1.189] | worse | 0.19 |" in text
    assert "| same | 1k | 1G | 4.1k | 2.382 ± 0.098 | +0.000 [+0.000, +0.000] | no detectable difference | 0 (no " \
           "spread) |" in text
    assert "| diverged |" in text and "Noise floor (lm, base against 1 repeat(s)" in text
    write_readme(summary, "runs/compare/tiny", readme)  # again: the same file, not a second table
    assert readme.read_text() == text
    readme.write_text("# zoo\n")
    with pytest.raises(ValueError, match=r"has no lines '<!-- zoo compare tiny: begin -->' \.\.\. "):
        write_readme(summary, "runs/compare/tiny", readme)
    with pytest.raises(FileNotFoundError, match="results.json does not exist; run the study first"):
        render(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# End to end: studies whose answer is known (slow: each run is a zoo fit process)


@pytest.mark.slow
def test_a_study_whose_answer_is_known(tmp_path, capsys):
    """Entries that differ only in name read "no detectable difference"; an entry trained at lr 1e-7
    reads "worse"; a grid over [1e-7, 3e-3] picks 3e-3 on validation (and then is the baseline's
    computation again); the report regenerates from results.json alone."""
    config = lm_study(
        tmp_path / "known.yaml", repeat_baseline=1,
        entries=[{"name": "base", "family": "gpt"}, {"name": "same", "family": "gpt"},
                 {"name": "broken", "family": "gpt", "train": {"lr": 1.0e-7}},
                 {"name": "tuned", "family": "gpt", "train": {"lr": [1.0e-7, 3.0e-3]}}],
        model={"embed_dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
        train={"max_steps": 30, "batch_size": 8, "lr": 3.0e-3, "warmup_steps": 2, "val_every": 15})
    out = tmp_path / "out"
    assert main(["--config", config, "--output-dir", str(out), "--jobs", "2"]) == 0
    summary = json.loads((out / "results.json").read_text())
    (table,) = summary["tables"]
    verdicts = {name: c["verdict"] for name, c in table["comparisons"][0]["metrics"]["test_bpb"].items()}
    assert verdicts == {"same": "no detectable difference", "broken": "worse", "tuned": "no detectable difference"}
    assert summary["choices"] == [{"task": "lm", "entry": "tuned", "chosen": "lr=0.003"}]
    assert len(summary["runs"]) == 3 * 3 + 2 + 2 + 3  # base, same, broken; the grid; tuned's other seeds; repeat
    assert table["noise_floor"][0]["metrics"]["test_bpb"]["sd_difference"] > 0  # another initialisation differs
    first = (out / "results.md").read_text()
    assert "| tuned | 0.003 |" in first
    shutil.rmtree(out / "runs")  # the report needs nothing but results.json
    (out / "results.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "results.md").read_text() == first
    assert yaml.safe_load((tmp_path / "known.yaml").read_text())["baseline"] == "base"


@pytest.mark.slow
def test_a_diverged_grid_point_is_a_result_not_a_failure(tmp_path):
    config = write_study(tmp_path / "div.yaml", families=["gpt"],
                         train={"max_steps": 6, "batch_size": 8, "val_every": 3, "warmup_steps": 1,
                                "lr": [1.0e-3, 1.0e30]})
    out = tmp_path / "out"
    assert main(["--config", config, "--output-dir", str(out)]) == 0  # the study goes on, and reports
    job = json.loads((out / "runs" / "reverse" / "gpt" / "lr=1e+30" / "seed0" / "job.json").read_text())
    assert job["diverged"].startswith("training loss is nan at step")
    summary = json.loads((out / "results.json").read_text())
    assert summary["choices"] == [{"task": "reverse", "entry": "gpt", "chosen": "lr=0.001"}]
    assert "| gpt | **0.000** | diverged |" in (out / "results.md").read_text()
