"""`zoo convert` writes a tokenizer Hugging Face uses whole: `AutoTokenizer` gives the zoo
tokenizer's ids on the built-in corpus, decodes them back, names the special tokens, and
`pipeline("text-generation")` writes what `zoo generate` writes; `zoo.load` opens both the
checkpoint and the export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import zoo
from tests.eval.helpers import corpus, make_checkpoint, tokenizer, tokenizer_file
from zoo.commands.convert import main as convert
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer
from zoo.generation import generate

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """One export per family shape (and the char tokenizer on a GPT), from random checkpoints."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, family, kind in [("gpt", "gpt", "sentencepiece"), ("t5", "t5", "sentencepiece"),
                               ("bert", "bert", "sentencepiece"), ("gpt_char", "gpt", "char"),
                               ("llama", "llama", "sentencepiece")]:
        checkpoint = make_checkpoint(root / f"{name}.ckpt", family, kind)
        assert convert([str(checkpoint), str(root / name)]) == 0
        out[name] = root / name
        out[f"{name}.ckpt"] = checkpoint
    return out


def sentencepiece_score(tok: SentencePieceTokenizer, ids: list[int]) -> float:
    return sum(tok._sp.get_score(i) for i in ids)


@pytest.mark.parametrize("name,kind", [("gpt", "sentencepiece"), ("gpt_char", "char")])
def test_autotokenizer_gives_the_zoo_ids_on_the_whole_corpus(exports, name, kind):
    hf = transformers.AutoTokenizer.from_pretrained(exports[name])
    zoo_tok = tokenizer(kind)
    assert hf.vocab_size == len(hf) == zoo_tok.vocab_size
    docs = list(corpus())
    ours = zoo_tok.encode_batch(docs)
    theirs = hf(docs, add_special_tokens=False)["input_ids"]
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    total = sum(map(len, ours))
    if isinstance(zoo_tok, CharTokenizer):
        assert not differ
    else:
        # Only exact ties: equally scored segmentations of the same text (SentencePiece sums scores
        # in float32, tokenizers in float64), each the best there is. Rare: a few tokens in 10^5.
        changed = sum(sum(x != y for x, y in zip(ours[i], theirs[i], strict=False)) for i in differ)
        assert changed <= 1e-4 * total, (changed, total)
        for i in differ:
            assert zoo_tok.decode(theirs[i]) == docs[i]
            assert math.isclose(sentencepiece_score(zoo_tok, ours[i]), sentencepiece_score(zoo_tok, theirs[i]),
                                abs_tol=1e-3)
    decoded = hf.batch_decode(theirs)
    assert all(text == doc for text, doc in zip(decoded, docs, strict=True))


def test_text_never_produces_a_special_token(exports):
    text = "[MASK] </s> <s> <pad> <unk> [CLS] [SEP] <extra_id_0> <0x41> ▁x\n\ttab  two spaces"
    for name, kind in [("gpt", "sentencepiece"), ("gpt_char", "char")]:
        hf = transformers.AutoTokenizer.from_pretrained(exports[name])
        ids = hf(text, add_special_tokens=False)["input_ids"]
        zoo_ids = tokenizer(kind).encode(text)
        assert ids == zoo_ids
        assert not set(ids) & (set(tokenizer(kind).special_ids) - {tokenizer(kind).unk_id})


def test_special_tokens_per_family_shape(exports):
    tok = tokenizer()
    gpt = transformers.AutoTokenizer.from_pretrained(exports["gpt"])
    assert (gpt.pad_token_id, gpt.unk_token_id, gpt.eos_token_id, gpt.bos_token_id) == (
        tok.pad_id, tok.unk_id, tok.eos_id, tok.eos_id)  # decoders: documents follow </s> (GPT-2's convention)
    assert gpt("The list").input_ids == tok.encode("The list")  # nothing added around decoder text

    t5 = transformers.AutoTokenizer.from_pretrained(exports["t5"])
    assert t5("The list").input_ids == tok.encode("The list") + [tok.eos_id]  # T5 inputs end with </s>
    assert t5.bos_token is None and t5.eos_token_id == tok.eos_id
    sentinels = [f"<extra_id_{i}>" for i in range(len(tok.sentinel_ids))]
    assert t5.convert_tokens_to_ids(sentinels) == tok.sentinel_ids
    assert set(sentinels) <= set(t5.all_special_tokens + list(getattr(t5, "extra_special_tokens", [])))

    bert = transformers.AutoTokenizer.from_pretrained(exports["bert"])
    assert bert("The list").input_ids == [tok.cls_id, *tok.encode("The list"), tok.sep_id]
    assert (bert.mask_token_id, bert.cls_token_id, bert.sep_token_id) == (tok.mask_id, tok.cls_id, tok.sep_id)
    assert bert.decode([tok.cls_id, *tok.encode("The list"), tok.mask_id, tok.sep_id],
                       skip_special_tokens=True) == "The list"

    config = json.loads((exports["gpt"] / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 128 and config["split_special_tokens"] is True


PROMPTS = ["The list type", "Return the number of items", "def f(x):\n    return"]


@pytest.mark.parametrize("name", ["gpt", "llama", "gpt_char"])
def test_text_generation_pipeline_writes_what_zoo_generate_writes(exports, name):
    model, tok = zoo.load(exports[f"{name}.ckpt"])
    pipe = transformers.pipeline("text-generation", model=str(exports[name]), device="cpu")
    for prompt in PROMPTS:
        ids = torch.tensor([tok.encode(prompt)])
        ours = generate(model, ids, max_new_tokens=12, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
        ours = ours[0, ids.shape[1]:].tolist()
        out = pipe(prompt, max_new_tokens=12, do_sample=False, return_tensors=True)[0]["generated_token_ids"]
        theirs = list(out)[ids.shape[1]:]
        if tok.eos_id in ours:
            ours = ours[: ours.index(tok.eos_id) + 1]
        assert theirs == ours, prompt
        text = pipe(prompt, max_new_tokens=12, do_sample=False, return_full_text=False)[0]["generated_text"]
        if "\ufffd" not in tok.decode(ours):  # random weights may write byte pieces that are no UTF-8
            assert text == tok.decode(ours)


def test_t5_generate_with_the_exported_tokenizer_writes_what_zoo_generate_writes(exports):
    # transformers 5 dropped the text2text-generation pipeline; its generate is what it ran.
    model, tok = zoo.load(exports["t5.ckpt"])
    hf_tok = transformers.AutoTokenizer.from_pretrained(exports["t5"])
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(exports["t5"]).eval()
    batch = hf_tok(PROMPTS, return_tensors="pt", padding=True)
    theirs = hf.generate(**batch, max_new_tokens=10, do_sample=False)
    ours = generate(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=10,
                    eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    assert theirs.tolist() == ours.tolist()
    assert hf_tok.batch_decode(theirs, skip_special_tokens=True) == [tok.decode(row) for row in ours]


def test_zoo_load_opens_checkpoint_and_export_alike(exports):
    for name in ["gpt", "t5", "bert", "gpt_char"]:
        model, tok = zoo.load(exports[f"{name}.ckpt"])
        again, tok_again = zoo.load(exports[name])
        assert type(model) is type(again) and not model.training and not again.training
        assert tok.fingerprint == tok_again.fingerprint
        for (key, value), (key_again, value_again) in zip(model.state_dict().items(), again.state_dict().items(),
                                                          strict=True):
            assert key == key_again and torch.equal(value, value_again), key
    assert zoo.load(exports["gpt"])[1].fingerprint == tokenizer().fingerprint


def test_zoo_load_refuses_in_one_line(exports, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint file or export directory"):
        zoo.load(tmp_path / "nothing")
    bare = tmp_path / "bare"
    transformers.AutoModelForCausalLM.from_pretrained(exports["gpt"]).save_pretrained(bare)
    with pytest.raises(ValueError, match=r"holds no zoo tokenizer .*pass tokenizer=PATH"):
        zoo.load(bare)
    with pytest.raises(ValueError, match="has 211 ids|has .* ids but the model"):
        zoo.load(bare, tokenizer=tokenizer_file("char"))


def test_convert_says_when_it_exports_weights_only_and_refuses_a_lost_tokenizer(exports, tmp_path, capsys):
    checkpoint = torch.load(exports["gpt.ckpt"], weights_only=True)
    del checkpoint["TextDataModule"]
    torch.save(checkpoint, tmp_path / "bare.ckpt")
    assert convert([str(tmp_path / "bare.ckpt"), str(tmp_path / "bare")]) == 0
    assert "weights only; the checkpoint records no tokenizer" in capsys.readouterr().out
    assert not (tmp_path / "bare" / "tokenizer.json").exists()
    assert convert([str(tmp_path / "bare.ckpt"), str(tmp_path / "named"), "--tokenizer",
                    str(tokenizer_file())]) == 0
    assert (tmp_path / "named" / "tokenizer.json").is_file()

    checkpoint = torch.load(exports["gpt.ckpt"], weights_only=True)
    checkpoint["TextDataModule"]["tokenizer_file"] = str(tmp_path / "moved.model")
    torch.save(checkpoint, tmp_path / "carried.ckpt")  # the tokenizer travels inside: its file may move
    assert convert([str(tmp_path / "carried.ckpt"), str(tmp_path / "carried")]) == 0
    assert (tmp_path / "carried" / "tokenizer.json").is_file()
    del checkpoint["TextDataModule"]["tokenizer_bytes"]  # a checkpoint from before they were saved in it
    torch.save(checkpoint, tmp_path / "moved.ckpt")
    with pytest.raises(ValueError, match="holds no tokenizer \\(it recorded .*moved.model, which no longer exists\\); "
                                         "pass --tokenizer PATH"):
        convert([str(tmp_path / "moved.ckpt"), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(ValueError, match="zoo convert: .*trained with another tokenizer"):
        convert([str(exports["gpt.ckpt"]), str(tmp_path / "out"), "--tokenizer", str(tokenizer_file("char"))])
