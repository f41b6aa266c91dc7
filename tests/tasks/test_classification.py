"""Sequence classification: every family from a zoo pretraining checkpoint and from Hugging Face
weights, head-only training, label maps through checkpoints, predictions, and one-line refusals."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from finetune_helpers import (
    FAMILY_NAMES,
    fit,
    hf_directory,
    labelled_data,
    pretraining_checkpoint,
    save_checkpoint,
    snapshot,
    tiny_config,
    train_steps,
)

from zoo.models.registry import FAMILIES
from zoo.tasks import load_task
from zoo.tasks.classification import CLASSIFIERS
from zoo.tasks.finetune import load_pretrained_model
from zoo.tasks.formats import FORMATS, Pooling

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models gain nothing from threads



def classifier_class(family: str):
    return CLASSIFIERS["gpt" if family == "llama" else family]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("labelled")


def data_for(family: str, directory):
    return labelled_data(directory, FAMILIES[family].shape)


@pytest.mark.parametrize("source", ["zoo", "hf"])
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_each_family_fine_tunes_from_pretrained_weights(family, source, data_dir, tmp_path):
    dm = data_for(family, data_dir)
    if source == "zoo":
        pretrained = pretraining_checkpoint(family, tmp_path, dm.tokenizer_file, dm.vocab_size)
    else:
        pytest.importorskip("transformers")
        pretrained = hf_directory(family, tmp_path, dm.vocab_size)
    body = load_pretrained_model(str(pretrained)).state_dict()
    # A config that disagrees with the weights' architecture: the weights' wins, runtime fields stay.
    given = tiny_config(family, dm.vocab_size, embed_dim=64, num_heads=2, dropout=0.2)
    task = classifier_class(family)(given, labels=dm.labels, pretrained=str(pretrained))
    assert task.config.embed_dim == 32 and task.config.dropout == 0.2
    loaded = task.model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in body.items())  # body loaded, head new
    trainer = fit(task, dm, steps=3)
    assert trainer.global_step == 3
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["val_loss"]) and 0 <= float(metrics["val_accuracy"]) <= 1
    assert "val_macro_f1" in metrics
    assert any(not torch.equal(task.model.state_dict()[n], t) for n, t in body.items() if t.is_floating_point())


@pytest.mark.parametrize("family", ["bert", "t5"])
def test_head_only_training_changes_only_the_head(family, data_dir):
    dm = data_for(family, data_dir)
    task = classifier_class(family)(tiny_config(family, dm.vocab_size), labels=dm.labels, freeze="body")
    before = snapshot(task)
    train_steps(task, dm.train_dataloader(), steps=3)
    after = task.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"head.classifier.weight", "head.classifier.bias"}


def test_a_classifier_learns_the_keyword_task(data_dir):
    dm = data_for("bert", data_dir)
    task = classifier_class("bert")(tiny_config("bert", dm.vocab_size), labels=dm.labels)
    losses = train_steps(task, dm.train_dataloader(), steps=40, lr=3e-3)
    # Means of five steps at each end: one step's loss depends on which batch the order put there.
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_label_map_round_trips_through_a_checkpoint(data_dir, tmp_path):
    dm = data_for("gpt", data_dir)
    task = classifier_class("gpt")(tiny_config("gpt", dm.vocab_size), labels=dm.labels)
    path = save_checkpoint(task, tmp_path / "classifier.ckpt", dm.tokenizer_file)
    reloaded = load_task(str(path)).eval()
    assert reloaded.label_names == dm.labels == ["animal", "colour", "tree"]
    assert torch.load(path, weights_only=True)["hyper_parameters"]["labels"] == dm.labels
    batch = next(iter(dm.val_dataloader()))
    task.eval()
    assert torch.equal(task(batch["input_ids"], batch["attention_mask"]),
                       reloaded(batch["input_ids"], batch["attention_mask"]))
    records = reloaded.prediction_records(reloaded.predict_step(batch, 0))
    assert [r["true_label"] for r in records] == [dm.labels[i] for i in batch["labels"].tolist()]
    first = records[0]
    assert set(first["probabilities"]) == set(dm.labels) and first["label"] in dm.labels
    assert sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_unused_lm_heads_are_frozen_and_t5_mean_pooling_freezes_the_decoder(data_dir):
    dm = data_for("t5", data_dir)
    untied = classifier_class("t5")(tiny_config("t5", dm.vocab_size, tie_embeddings=False), labels=dm.labels,
                                    pooling="mean")
    assert not untied.model.lm_head.weight.requires_grad
    assert not any(p.requires_grad for p in untied.model.decoder.parameters())
    assert untied.model.embed_tokens.weight.requires_grad
    bert = classifier_class("bert")(tiny_config("bert", dm.vocab_size), labels=dm.labels)
    assert not bert.model.mlm_head.bias.requires_grad and bert.model.mlm_head.dense.weight.requires_grad


def test_bad_input_fails_in_one_line(data_dir, tmp_path):
    dm = data_for("bert", data_dir)
    config = tiny_config("bert", dm.vocab_size)
    with pytest.raises(ValueError, match=r"num_labels=5 disagrees with the data, which has 3 labels"):
        classifier_class("bert")(config, labels=dm.labels, num_labels=5)
    gpt = pretraining_checkpoint("gpt", tmp_path, dm.tokenizer_file, dm.vocab_size)
    with pytest.raises(ValueError, match=r"holds a GPTConfig model; this task fine-tunes a BertConfig"):
        classifier_class("bert")(config, labels=dm.labels, pretrained=str(gpt))
    other_vocab = pretraining_checkpoint("bert", tmp_path, dm.tokenizer_file, dm.vocab_size + 7)
    with pytest.raises(ValueError, match=rf"has vocab_size {dm.vocab_size + 7} but the data's tokenizer has "
                                         rf"{dm.vocab_size}; pass --data.init_args.tokenizer_path"):
        classifier_class("bert")(config, labels=dm.labels, pretrained=str(other_vocab))
    with pytest.raises(ValueError, match=r"pooling='last' is not available for an encoder model"):
        classifier_class("bert")(config, labels=dm.labels, pooling="last")
    with pytest.raises(ValueError, match="freeze='all' must be"):
        classifier_class("bert")(config, labels=dm.labels, freeze="all")


def test_pooling_names_and_the_poolings_per_shape_stay_in_sync():
    offered = {name for layout in FORMATS.values() for name in layout.poolings}
    assert offered | {"auto"} == set(get_args(Pooling))
    assert set(FORMATS) == {family.shape for family in FAMILIES.values()}
