"""`ZooLM`, the zoo's lm-eval model: tokenization as lm-eval's `hf` backend does it per family, the
rolling log-likelihood, generation cut at the task's stop strings, and a masked LM's answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.eval.helpers import make_checkpoint, tokenizer

pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402

from zoo.eval.harness import ZooLM, parse_batch_size  # noqa: E402


def instance(kind: str, args: tuple) -> Instance:
    return Instance(request_type=kind, doc={}, arguments=args, idx=0, metadata=("test", 0, 1))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, ZooLM]:
    root = tmp_path_factory.mktemp("harness")
    return {family: ZooLM(checkpoint=str(make_checkpoint(root / f"{family}.ckpt", family, max_seq_len=32)),
                          device="cpu", batch_size=4, progress=False)
            for family in ("gpt", "t5", "bert")}


def test_tokenization_per_family(models):
    tok = tokenizer()
    assert models["gpt"].tok_encode("The list") == tok.encode("The list")
    assert models["t5"].tok_encode("The list") == tok.encode("The list") + [tok.eos_id]  # T5 inputs end with </s>
    assert models["t5"].tok_encode("The list", add_special_tokens=False) == tok.encode("The list")
    assert models["bert"].backend == "causal" and models["t5"].backend == "seq2seq"
    assert models["gpt"].prefix_token_id == tok.eos_id  # documents follow </s> in training


@torch.no_grad()
def test_rolling_loglikelihood_is_every_token_after_the_separator(models):
    """A text longer than max_seq_len (32) is read in windows; each token is predicted once, the
    first after </s>: the sum equals a direct computation where the text fits the model."""
    lm = models["gpt"]
    tok = tokenizer()
    text = "Return a new list containing all items from the iterable in ascending order, " * 3
    ids = tok.encode(text)
    assert len(ids) > 32
    total = lm.loglikelihood_rolling([instance("loglikelihood_rolling", (text,))])[0]
    short = "Return a new list."
    short_ids = [tok.eos_id, *tok.encode(short)]
    log_probs = F.log_softmax(lm.model(torch.tensor([short_ids[:-1]]))[0], dim=-1)
    want = float(log_probs[torch.arange(len(short_ids) - 1), torch.tensor(short_ids[1:])].sum())
    assert lm.loglikelihood_rolling([instance("loglikelihood_rolling", (short,))])[0] == pytest.approx(want, abs=1e-4)
    # The windows of the long text: compared with lm-eval's hf backend in test_parity (zoo_paragraphs).
    assert total < lm.loglikelihood_rolling([instance("loglikelihood_rolling", (text[:60],))])[0] < 0


def test_masked_lm_answers_scoring_requests_and_refuses_generation(models):
    lm = models["bert"]
    out = lm.loglikelihood([instance("loglikelihood", ("The list", " type")), instance("loglikelihood", ("", "x"))])
    assert all(value < 0 for value, _ in out)
    assert lm.loglikelihood_rolling([instance("loglikelihood_rolling", ("Return the list " * 10,))])[0] < 0
    with pytest.raises(ValueError, match="asks for generated text .* a masked LM"):
        lm.generate_until([instance("generate_until", ("abc ->", {"until": ["\n"]}))])


def test_generate_until_stops_at_the_task_stop_strings(models):
    for family in ("gpt", "t5"):
        lm = models[family]
        free = lm.generate_until([instance("generate_until", ("The list", {"until": [], "max_gen_toks": 8}))])[0]
        stop = free[len(free) // 2] if free else "x"
        cut = lm.generate_until([instance("generate_until", ("The list", {"until": [stop], "max_gen_toks": 8}))])[0]
        assert cut == free.split(stop)[0]


def test_bad_model_args_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="pass checkpoint=PATH"):
        ZooLM()
    with pytest.raises(ValueError, match=r"unknown model_args \['pretrained'\]"):
        ZooLM(pretrained="gpt2")
    with pytest.raises(ValueError, match="dtype='fp8' must be one of"):
        ZooLM(checkpoint="x", dtype="fp8")
    assert parse_batch_size("auto") == parse_batch_size(None) == 32 and parse_batch_size("8") == 8
    with pytest.raises(ValueError, match="batch_size='0' must be a positive integer"):
        parse_batch_size("0")
    checkpoint = make_checkpoint(tmp_path / "bare.ckpt", "gpt")
    saved = torch.load(checkpoint, weights_only=True)
    del saved["TextDataModule"]
    torch.save(saved, checkpoint)
    with pytest.raises(ValueError, match="bare.ckpt: holds no tokenizer; pass --tokenizer PATH"):
        ZooLM(checkpoint=str(checkpoint))


def test_an_export_directory_scores_as_its_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from zoo.commands.convert import main as convert

    checkpoint = make_checkpoint(tmp_path / "t5.ckpt", "t5")
    assert convert([str(checkpoint), str(tmp_path / "t5")]) == 0
    requests = [instance("loglikelihood", ("The list", " type")), instance("loglikelihood", ("", "Return x"))]
    ours = ZooLM(checkpoint=str(checkpoint), progress=False).loglikelihood(requests)
    exported = ZooLM(checkpoint=str(tmp_path / "t5"), progress=False).loglikelihood(requests)
    assert [v for v, _ in ours] == pytest.approx([v for v, _ in exported], abs=1e-5)
    assert [g for _, g in ours] == [g for _, g in exported]
