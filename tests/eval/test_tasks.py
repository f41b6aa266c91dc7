"""The local tasks: every YAML loads in lm-eval's TaskManager from the zoo's own data, the items are
well formed, the text items come from documents zoo fit holds out, and the data rebuilds the same."""

from __future__ import annotations

import json
import sys

import pytest

from zoo.eval.tasks import DATA, TASKS, build_data, expand, held_out_documents, task_directory

lm_eval = pytest.importorskip("lm_eval")


def items(stem: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{stem}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_local_task_loads_offline_from_the_task_directory(tmp_path):
    from zoo.eval.run import prepare

    manager, tasks = prepare(["zoo_local"], cache_dir=str(tmp_path))
    assert set(tasks) == set(TASKS)
    for name, task in tasks.items():
        assert task.get_config("output_type") == TASKS[name].output_type
        assert len(task.test_docs()) == len(items(TASKS[name].splits["test"]))
    assert (task_directory(tmp_path) / "zoo_cloze.yaml").is_file()
    assert expand(["zoo_scoring"]) == ["zoo_cloze", "zoo_next_sentence", "zoo_last_word", "zoo_paragraphs"]


def test_items_are_well_formed():
    for task in ("zoo_cloze", "zoo_next_sentence"):
        for split in ("test", "train"):
            for item in items(f"{task}.{split}"):
                assert len(item["choices"]) == len(set(item["choices"])) == 4 and 0 <= item["label"] < 4
    for item in items("zoo_last_word.test"):
        assert item["target"].isalpha() and item["context"]
    for rule, check in [("copy", lambda s: s), ("reverse", lambda s: s[::-1]), ("sort", lambda s: "".join(sorted(s))),
                        ("addition", lambda s: str(sum(map(int, s.split("+")))))]:
        for item in items(f"zoo_{rule}.test"):
            assert item["target"] == check(item["source"])


def test_text_items_come_from_held_out_documents_only():
    manifest = json.loads((DATA / "manifest.json").read_text())
    if manifest["python"].rsplit(".", 1)[0] != ".".join(map(str, sys.version_info[:2])):
        pytest.skip(f"the data was built from CPython {manifest['python']}'s corpus")
    train, held_out = held_out_documents()
    held_out_text = "\n".join(" ".join(doc.split()) for doc in held_out)
    train_text = "\n".join(" ".join(doc.split()) for doc in train)
    for item in items("zoo_cloze.test"):
        sentence = f"{item['context']} {item['choices'][item['label']]}"
        assert sentence in held_out_text and sentence not in train_text
    for item in items("zoo_last_word.test"):
        sentence = f"{item['context']} {item['target']}."
        assert sentence in held_out_text and sentence.split(". ")[-1] not in train_text
    for item in items("zoo_next_sentence.test"):
        pair = f"{item['context']} {item['choices'][item['label']]}"
        assert pair in held_out_text and pair not in train_text
    for item in items("zoo_paragraphs.test"):
        assert item["text"] in held_out_text and item["text"] not in train_text


@pytest.mark.slow
def test_the_committed_data_rebuilds_the_same(tmp_path):
    manifest = json.loads((DATA / "manifest.json").read_text())
    if manifest["python"].rsplit(".", 1)[0] != ".".join(map(str, sys.version_info[:2])):
        pytest.skip(f"the data was built from CPython {manifest['python']}'s corpus")
    build_data(tmp_path)
    for path in DATA.glob("*.jsonl"):
        assert (tmp_path / path.name).read_text() == path.read_text(), path.name


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "t5", "bert"])
def test_a_random_model_scores_chance_on_the_multiple_choice_tasks(tmp_path, family):
    """No shortcut in the items: an untrained model of each family (which prefers whatever its random
    weights prefer, e.g. fewer tokens) lands within three standard errors of 1/4."""
    from tests.eval.helpers import make_checkpoint
    from zoo.eval.harness import ZooLM
    from zoo.eval.run import evaluate, scores

    lm = ZooLM(checkpoint=str(make_checkpoint(tmp_path / "m.ckpt", family, seed=7)), batch_size=32, progress=False)
    for row in scores(evaluate(lm, ["zoo_cloze"], quiet=True, bootstrap_iters=0)):
        assert abs(row["value"] - 0.25) <= 3 * (0.25 * 0.75 / 211) ** 0.5, row
