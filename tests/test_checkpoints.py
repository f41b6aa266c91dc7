"""Every door that opens a checkpoint x every fault ends in one line naming the file and the fault
(``zoo.checkpoints``): the CLI doors through the console script's ``main`` (each door once more as a
real ``zoo`` subprocess), the Python doors as calls raising ``CheckpointError``. A checkpoint whose
pickle runs code is refused without running it. Then the CLI's other bad inputs: an unknown config
field, a YAML syntax error, a negative number after a space, a negative ``init_std``."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.checkpoints import CheckpointError, CheckpointNotFoundError, load_checkpoint
from zoo.cli import main, one_line, run
from zoo.models import GPTConfig
from zoo.tasks import CausalLM, LanguageModelTask, MaskedLM, load_task

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "debug" / "smoke.yaml"
GPT_YAML = REPO / "configs" / "gpt_clm.yaml"
MARKER = "unsafe-code-ran"  # what the malicious checkpoint's pickle would create


def smoke(*extra: str) -> list[str]:
    return ["--config", str(GPT_YAML), "--config", str(SMOKE), *extra]


class RunsCode:
    """Pickles as a call of ``exec`` that creates ``marker``: unpickling it runs code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture(scope="session")
def real(tmp_path_factory) -> dict[str, Path]:
    """``last.ckpt`` of a one-step smoke run per family, and a GPT trained with the char tokenizer
    (another vocabulary than the smoke config's)."""
    root = tmp_path_factory.mktemp("real_checkpoints")
    runs = {"gpt": ("gpt_clm", []), "bert": ("bert_mlm", []), "t5": ("t5_span", []),
            "gpt_char": ("gpt_clm", ["--data.init_args.tokenizer", "char"])}
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        for name, (config, extra) in runs.items():
            run(["fit", "--config", str(REPO / "configs" / f"{config}.yaml"), "--config", str(SMOKE),
                 "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--checkpoint.dirpath", str(root / name), *extra])
    finally:
        mp.undo()
    paths = {name: root / name / "last.ckpt" for name in runs}
    assert all(path.is_file() for path in paths.values())
    return paths


@pytest.fixture(scope="session")
def bad(tmp_path_factory, real) -> dict[str, Path]:
    """One file per fault; ``malicious`` is a real zoo checkpoint with one entry whose unpickling
    would create ``MARKER`` beside it."""
    root = tmp_path_factory.mktemp("bad_checkpoints")
    files = {name: root / f"{name}.ckpt" for name in ("empty", "truncated", "random", "plain", "malicious")}
    files["empty"].write_bytes(b"")
    whole = real["gpt"].read_bytes()
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    files["random"].write_bytes(random.Random(0).randbytes(4096))
    torch.save({"a": 1}, files["plain"])
    trojan = torch.load(real["gpt"], weights_only=True)
    trojan["payload"] = RunsCode(root / MARKER)
    torch.save(trojan, files["malicious"])
    return files


# fault -> (the file, the words of the one line)
def fault_file(fault: str, real: dict[str, Path], bad: dict[str, Path]) -> Path:
    return real["bert"] if fault == "other_family" else bad[fault]


FAULTS = {
    "empty": "not a checkpoint: the file is empty",
    "truncated": "not a checkpoint: a truncated or corrupt zip archive",
    "random": "not a checkpoint: not the zip archive torch.save writes",
    "plain": "not a zoo checkpoint: a dict of 'a', without the 'zoo_task' entry",
    "malicious": "refused: loading it needs unpickling exec, which can run arbitrary code",
    "other_family": "holds a bert model of MaskedLM",
}


def assert_one_line(message: str, path: Path, words: str) -> None:
    assert "\n" not in message, message
    assert str(path) in message and words in message, message
    assert "weights_only=False" not in message and "Traceback" not in message, message


def assert_no_code_ran(bad: dict[str, Path]) -> None:
    assert not (bad["malicious"].parent / MARKER).exists(), "the malicious checkpoint's code ran"


# ---------------------------------------------------------------------------------------------
# The CLI doors, through the console script's entry point


CLI_DOORS = {
    "validate": lambda f: ["validate", *smoke(), "--ckpt_path", str(f)],
    "test": lambda f: ["test", *smoke(), "--ckpt_path", str(f)],
    "predict": lambda f: ["predict", *smoke(), "--ckpt_path", str(f)],
    "fit": lambda f: ["fit", *smoke(), "--ckpt_path", str(f)],
    "pretrained": lambda f: ["fit", *smoke(), "--model.init_args.pretrained", str(f)],
    "generate": lambda f: ["generate", str(f), "--prompt", "The list type", "--max-new-tokens", "2"],
    "convert": lambda f: ["convert", str(f), "converted"],
}
ANY_FAMILY = {"generate", "convert"}  # these open every family: another family is no fault there


def zoo_main(monkeypatch, capfd, args: list[str]) -> str:
    """Run ``zoo ARGS`` through ``zoo.cli.main``; returns the one line it exits with."""
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("zoo: error: "), message  # exit status 1
    return message


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("door", list(CLI_DOORS))
def test_cli_door_refuses_a_bad_checkpoint_in_one_line(real, bad, workdir, monkeypatch, capfd, door, fault):
    if fault == "other_family" and door in ANY_FAMILY:
        pytest.skip(f"zoo {door} opens every family")
    path = fault_file(fault, real, bad)
    message = zoo_main(monkeypatch, capfd, CLI_DOORS[door](path))
    assert_one_line(message, path, FAULTS[fault])
    assert not (workdir / "runs" / "gpt_clm" / "checkpoints").exists()  # refused before any step
    assert not (workdir / "converted").exists()
    assert_no_code_ran(bad)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["truncated", "malicious", "other_family"])
def test_ckpt_path_last_goes_through_the_same_checks(real, bad, workdir, monkeypatch, capfd, fault):
    """`--ckpt_path last` resolves to <checkpoint.dirpath>/last.ckpt, which meets the loader too."""
    (workdir / "ck").mkdir()
    shutil.copy(fault_file(fault, real, bad), workdir / "ck" / "last.ckpt")
    message = zoo_main(monkeypatch, capfd, ["fit", *smoke(), "--checkpoint.dirpath", "ck", "--ckpt_path", "last"])
    assert_one_line(message, Path("ck") / "last.ckpt", FAULTS[fault])
    assert_no_code_ran(bad)


def tokenizer_file(checkpoint: Path) -> str:
    return torch.load(checkpoint, weights_only=True)["TextDataModule"]["tokenizer_file"]


@pytest.mark.slow
@pytest.mark.parametrize("door", ["validate", "test", "predict", "fit", "pretrained", "generate"])
def test_cli_door_refuses_another_vocabulary_in_one_line(real, workdir, monkeypatch, capfd, door):
    """A GPT trained with the char tokenizer, given the smoke run's sentencepiece tokenizer (1000 ids)
    by name — left unnamed, the data would take the one the checkpoint recorded; ``zoo generate``
    is given the other tokenizer the same way."""
    if door == "generate":
        path, other = real["gpt"], tokenizer_file(real["gpt_char"])
        args = [*CLI_DOORS[door](path), "--tokenizer", other]
    else:
        path, other = real["gpt_char"], tokenizer_file(real["gpt"])
        args = [*CLI_DOORS[door](path), "--data.init_args.tokenizer_path", other]
    words = {"pretrained": "does not match the model config: vocab_size",  # a resume refuses another data setting
             "fit": "cannot resume with data.init_args.tokenizer="}.get(door, "trained with another tokenizer")
    message = zoo_main(monkeypatch, capfd, args)
    assert_one_line(message, path, words)
    assert not (workdir / "runs" / "gpt_clm" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("door", ["convert"])
def test_cli_door_refuses_weights_that_do_not_fit_their_config(real, workdir, monkeypatch, capfd, door):
    """A hand-edited checkpoint whose config says another vocabulary than its weights hold."""
    checkpoint = torch.load(real["gpt"], weights_only=True)
    checkpoint["hyper_parameters"]["config"]["vocab_size"] += 1
    path = workdir / "edited.ckpt"
    torch.save(checkpoint, path)
    message = zoo_main(monkeypatch, capfd, CLI_DOORS[door](path))
    assert_one_line(message, path, "its weights do not fit the model: size mismatch for model.")


@pytest.mark.slow
def test_cli_takes_the_model_from_a_good_checkpoint(real, workdir):
    """The checks refuse only what is wrong: a good checkpoint validates, its architecture (one
    layer) winning over the command line's."""
    cli = run(["validate", *smoke("--trainer.limit_val_batches", "1", "--model.init_args.config.num_layers", "3"),
               "--ckpt_path", str(real["gpt"])])
    assert type(cli.model) is CausalLM and cli.model.config.num_layers == 1
    assert cli.config["validate"]["weights_only"] is True  # Lightning's own load is weights_only too


# The installed console script; without one (not installed), what it runs.
ZOO = [shutil.which("zoo", path=str(Path(sys.executable).parent))] if shutil.which(
    "zoo", path=str(Path(sys.executable).parent)) else [sys.executable, "-c", "from zoo.cli import main; main()"]


def zoo_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*ZOO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("zoo: error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr[-2000:]
    return errors[0]


# One real process per door, each with another fault, so every fault also goes through one.
PROCESS_CASES = [("validate", "malicious"), ("test", "empty"), ("predict", "other_family"), ("fit", "truncated"),
                 ("pretrained", "random"), ("generate", "plain"), ("convert", "malicious")]


@pytest.mark.slow
@pytest.mark.parametrize("door,fault", PROCESS_CASES)
def test_console_script_prints_one_line_for_a_bad_checkpoint(real, bad, tmp_path, door, fault):
    path = fault_file(fault, real, bad)
    line = assert_one_error_line(zoo_subprocess(*CLI_DOORS[door](path), cwd=tmp_path))
    assert_one_line(line, path, FAULTS[fault])
    assert_no_code_ran(bad)


# ---------------------------------------------------------------------------------------------
# The Python doors


def gpt_config(checkpoint: Path, **changes) -> GPTConfig:
    saved = torch.load(checkpoint, weights_only=True)["hyper_parameters"]["config"]
    return GPTConfig(**{**saved, **changes})


API_DOORS = {
    "load_checkpoint": lambda f, real: load_checkpoint(f, what="checkpoint", task=CausalLM),
    "load_task": lambda f, real: load_task(str(f)),
    "load_from_checkpoint": lambda f, real: CausalLM.load_from_checkpoint(f),
    "pretrained": lambda f, real: CausalLM(gpt_config(real["gpt"]), pretrained=str(f)),
}
API_WHAT = {"load_checkpoint": "checkpoint", "load_task": "checkpoint",
            "load_from_checkpoint": "CausalLM.load_from_checkpoint", "pretrained": "pretrained"}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("door", list(API_DOORS))
def test_python_door_raises_one_checkpoint_error(real, bad, door, fault):
    if fault == "other_family" and door == "load_task":
        pytest.skip("load_task opens every family")
    path = fault_file(fault, real, bad)
    with pytest.raises(CheckpointError) as raised:
        API_DOORS[door](path, real)
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert message.startswith(f"{API_WHAT[door]} {path}: ")
    assert_one_line(message, path, FAULTS[fault])
    assert_no_code_ran(bad)


def test_python_doors_refuse_another_vocabulary(real, tmp_path):
    other = gpt_config(real["gpt"]).vocab_size + 7
    with pytest.raises(CheckpointError, match=r"CausalLM.load_from_checkpoint .*: does not match the model: "
                                              rf"vocab_size: checkpoint \d+ vs now {other} \(the data's tokenizer"):
        CausalLM.load_from_checkpoint(real["gpt"], config=gpt_config(real["gpt"], vocab_size=other).to_dict())
    with pytest.raises(CheckpointError, match=rf"pretrained {real['gpt']}: does not match the model config: "
                                              rf"vocab_size: pretrained \d+ vs config {other} \(the data's tokenizer"):
        CausalLM(gpt_config(real["gpt"], vocab_size=other), pretrained=str(real["gpt"]))
    edited = torch.load(real["gpt"], weights_only=True)
    edited["hyper_parameters"]["config"]["vocab_size"] = other
    torch.save(edited, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match=r"checkpoint .*edited.ckpt: its weights do not fit the model: size "
                                              r"mismatch for model\.\S+: .*\(and \d+ more\)$"):
        load_task(str(tmp_path / "edited.ckpt"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"^checkpoint nowhere.ckpt: no such file$") as raised:
        load_task("nowhere.ckpt")
    assert isinstance(raised.value, FileNotFoundError) and isinstance(raised.value, ValueError)
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        CausalLM.load_from_checkpoint(tmp_path)


def test_foreign_files_are_named_for_what_they_are(tmp_path):
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "state_dict.pt")
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": {}}, tmp_path / "lightning.ckpt")
    torch.save({"zoo_task": "zoo.nowhere.Task", "state_dict": {}}, tmp_path / "unknown_task.ckpt")
    torch.save({"zoo_task": "os.system", "state_dict": {}}, tmp_path / "outside_zoo.ckpt")
    expected = {"tensor.pt": "it holds a Tensor, not a checkpoint dict",
                "state_dict.pt": "a bare state_dict of 1 tensors",
                "lightning.ckpt": "a Lightning checkpoint of another LightningModule",
                "unknown_task.ckpt": "its 'zoo_task' entry 'zoo.nowhere.Task' is not a zoo task",
                "outside_zoo.ckpt": "its 'zoo_task' entry 'os.system' is not a zoo task"}
    for name, words in expected.items():
        with pytest.raises(CheckpointError) as raised:
            load_task(str(tmp_path / name))
        assert_one_line(str(raised.value), tmp_path / name, f"not a zoo checkpoint: {words}")


def test_a_bare_pickle_is_refused_unread(tmp_path):
    import pickle

    (tmp_path / "bare.pkl").write_bytes(pickle.dumps(RunsCode(tmp_path / MARKER)))
    with pytest.raises(CheckpointError, match="not the zip archive torch.save writes .a bare pickle, never unpickled"):
        load_checkpoint(tmp_path / "bare.pkl")
    assert not (tmp_path / MARKER).exists()


def test_the_malicious_payload_would_run_if_unpickled_unsafely(real, bad, tmp_path):
    """The marker check can fail: the same payload, loaded unsafely, does create its marker."""
    control = torch.load(real["gpt"], weights_only=True)
    control["payload"] = RunsCode(tmp_path / MARKER)
    torch.save(control, tmp_path / "control.ckpt")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "control.ckpt")
    assert not (tmp_path / MARKER).exists()
    torch.load(tmp_path / "control.ckpt", weights_only=False)  # what zoo never does
    assert (tmp_path / MARKER).exists()
    assert_no_code_ran(bad)


def test_good_checkpoints_open_through_every_python_door(real):
    for family, task_cls in (("gpt", CausalLM), ("bert", MaskedLM)):
        assert type(load_task(str(real[family]))) is task_cls
        assert type(task_cls.load_from_checkpoint(real[family])) is task_cls
        assert type(LanguageModelTask.load_from_checkpoint(real[family])) is task_cls  # the class it holds
    assert load_checkpoint(real["t5"], what="pretrained", task=None)["zoo_task"].endswith("Seq2SeqLM")
    with pytest.raises(CheckpointError, match="holds a t5 model of Seq2SeqLM, but CausalLM needs a gpt one"):
        load_checkpoint(real["t5"], task=CausalLM)


# ---------------------------------------------------------------------------------------------
# The CLI's other unclear inputs (item 7): one `zoo: error:` line each


@pytest.fixture
def yaml_files(tmp_path) -> dict[str, Path]:
    files = {
        "unknown": "model:\n  init_args:\n    config:\n      num_layer: 2\n",
        "syntax": "model:\n  init_args:\n    config: {embed_dim: 32\n    lr: 1\n",
        "negative_std": "model:\n  init_args:\n    config:\n      init_std: -0.5\n",
        "linked": "last_checkpoint:\n  dirpath: elsewhere\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return {name: tmp_path / f"{name}.yaml" for name in files}


VALID_FIELDS = "valid fields: max_seq_len, embed_dim, num_layers, num_heads"


def unclear_input(case: str, yaml_files: dict[str, Path]) -> tuple[list[str], list[str]]:
    """(arguments after ``zoo fit`` + the smoke config, words of the one line)."""
    return {
        "unknown_flag": (["--model.init_args.config.num_layer", "2"],
                         ["model.init_args.config.num_layer: GPTConfig has no field 'num_layer' "
                          "(did you mean 'num_layers'?)", VALID_FIELDS]),
        "unknown_yaml": (["--config", str(yaml_files["unknown"])],
                         ["model.init_args.config.num_layer: GPTConfig has no field 'num_layer'", VALID_FIELDS]),
        "syntax": (["--config", str(yaml_files["syntax"])],
                   [f"{yaml_files['syntax']} line 4, column 7: YAML syntax error: expected ',' or '}}', but got ':' "
                    "(while parsing a flow mapping at line 3)"]),
        "negative_lr": (["--model.init_args.lr", "-1e-3"],
                        ["--model.init_args.lr -1e-3: a negative number after a space reads as an option; "
                         "write --model.init_args.lr=-1e-3"]),
        "negative_std_yaml": (["--config", str(yaml_files["negative_std"])], ["GPTConfig: init_std=-0.5 must be >= 0"]),
        "negative_std_flag": (["--model.init_args.config.init_std=-0.5"], ["GPTConfig: init_std=-0.5 must be >= 0"]),
        "unknown_task_argument": (["--model.init_args.lrr", "1e-3"],
                                  ["model.init_args.lrr: CausalLM has no argument 'lrr' (did you mean 'lr'?); "
                                   "valid arguments: config, lr, weight_decay"]),
        "linked_yaml": (["--config", str(yaml_files["linked"])],
                        [f"{yaml_files['linked']}: last_checkpoint.dirpath is set from checkpoint.dirpath (linked); "
                         "set checkpoint.dirpath instead"]),
        "linked_flag": (["--last_checkpoint.dirpath", "elsewhere"],
                        ["--last_checkpoint.dirpath is set from --checkpoint.dirpath (linked); set "
                         "--checkpoint.dirpath instead"]),
        "unknown_data_argument": (["--data.init_args.vocab_sise", "900"],
                                  ["data.init_args.vocab_sise: TextDataModule has no argument 'vocab_sise' "
                                   "(did you mean 'vocab_size'?); valid arguments:"]),
    }[case]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unknown_flag", "unknown_yaml", "syntax", "negative_lr", "negative_std_yaml",
                                  "linked_yaml"])
def test_unclear_inputs_end_in_one_line_of_the_console_script(yaml_files, tmp_path, case):
    args, words = unclear_input(case, yaml_files)
    line = assert_one_error_line(zoo_subprocess("fit", *smoke(*args), cwd=tmp_path))
    assert all(w in line for w in words), line
    assert not (tmp_path / "runs" / "gpt_clm" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unknown_flag", "syntax", "negative_lr", "negative_std_flag",
                                  "unknown_task_argument", "unknown_data_argument", "linked_flag"])
def test_unclear_inputs_end_in_one_line(yaml_files, workdir, monkeypatch, capfd, case):
    args, words = unclear_input(case, yaml_files)
    line = zoo_main(monkeypatch, capfd, ["fit", *smoke(*args)])
    assert "\n" not in line and all(w in line for w in words), line
    assert not (workdir / "runs" / "gpt_clm" / "checkpoints").exists()


def test_negative_numbers_argparse_reads_are_left_alone(workdir):
    """-0.5 after a space is a value to argparse already: it reaches the config's own check, not the
    advice to write ``=``."""
    with pytest.raises(Exception) as raised:
        run(["fit", *smoke("--model.init_args.config.init_std", "-0.5")])
    assert one_line(raised.value) == "GPTConfig: init_std=-0.5 must be >= 0 (the std of the normal initialisation)"
