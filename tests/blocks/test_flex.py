"""FlexAttention (zoo.blocks.flex) against the dense SDPA path: every biased and masked scheme,
padded and cached, in every family.

On a CPU the fused kernels take minutes to compile, so these tests run FlexAttention's eager
reference (``COMPILE_KERNELS = False``): it evaluates the same ``score_mod`` and ``mask_mod`` the
kernel would, which is what the zoo writes. The compiled kernel is exercised by the GPU test and
``benchmarks/attention.py``.
"""

import pytest
import torch

from zoo.blocks import flex
from zoo.blocks.flex import FlexMask, document_ids, stack_flex_masks, t5_dense_bias
from zoo.blocks.positions import T5RelativeBias
from zoo.generation import generate
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

pytestmark = [
    pytest.mark.skipif(not flex.flex_available(), reason="this torch has no FlexAttention"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # "flex_attention called without torch.compile()"
]

SIZE = dict(vocab_size=61, embed_dim=32, num_layers=2, num_heads=4, max_seq_len=64, dropout=0.0)


@pytest.fixture(autouse=True)
def _eager_flex(monkeypatch):
    monkeypatch.setattr(flex, "COMPILE_KERNELS", False)


def _pair(family, **fields):
    """The same weights twice: the dense SDPA reference and the FlexAttention model."""
    cls, config_cls = {"gpt": (GPT, GPTConfig), "bert": (BERT, BertConfig), "t5": (T5, T5Config)}[family]
    reference = cls(config_cls(**{**SIZE, **fields})).eval()
    flexed = cls(config_cls(**{**SIZE, **fields, "attn_implementation": "flex"})).eval()
    flexed.load_state_dict(reference.state_dict())
    return reference, flexed


def _padded(b=3, t=20, left=True):
    ids = torch.randint(4, 61, (b, t))
    mask = torch.ones(b, t, dtype=torch.bool)
    if left:
        mask[1, :5], mask[2, :11] = False, False
    else:
        mask[1, 15:], mask[2, 9:] = False, False
    return ids, mask


class _Spy:
    """Counts the attention calls that received a FlexMask, so a test cannot pass on the dense path."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = flex.flex_attention

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(flex, "flex_attention", counted)


@pytest.mark.parametrize("position", ["alibi", "relative", "learned"])
@pytest.mark.parametrize("padded", [False, True])
def test_causal_decoder_equals_dense(position, padded, monkeypatch):
    """Biases always go through FlexAttention; causal + padding too (dense, it is a (b, 1, t, s)
    mask); plain causal attention keeps SDPA's is_causal kernel."""
    spy = _Spy(monkeypatch)
    reference, flexed = _pair("gpt", position=position)
    ids, mask = _padded()
    mask = mask if padded else None
    with torch.no_grad():
        expected, got = reference(ids, mask), flexed(ids, mask)
    real = mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    assert spy.calls == (SIZE["num_layers"] if position != "learned" or padded else 0)


@pytest.mark.parametrize("position", ["alibi", "relative"])
def test_bidirectional_encoder_with_padding_equals_dense(position, monkeypatch):
    spy = _Spy(monkeypatch)
    reference, flexed = _pair("bert", position=position)
    ids, mask = _padded(left=False)
    with torch.no_grad():
        torch.testing.assert_close(flexed(ids, mask)[mask], reference(ids, mask)[mask], atol=1e-5, rtol=1e-5)
    assert spy.calls == SIZE["num_layers"]


def test_t5_encoder_decoder_equals_dense(monkeypatch):
    spy = _Spy(monkeypatch)
    reference, flexed = _pair("t5")
    ids, mask = _padded(left=False)
    dec, dec_mask = _padded(t=9, left=False)
    with torch.no_grad():
        expected, got = reference(ids, dec, mask, dec_mask), flexed(ids, dec, mask, dec_mask)
    torch.testing.assert_close(got[dec_mask], expected[dec_mask], atol=1e-5, rtol=1e-5)
    assert spy.calls == 2 * SIZE["num_layers"]  # encoder and decoder self-attention; cross-attention is SDPA


def test_grouped_query_attention_equals_dense(monkeypatch):
    spy = _Spy(monkeypatch)
    reference, flexed = _pair("gpt", position="alibi", num_kv_heads=2)
    ids, mask = _padded()
    with torch.no_grad():
        torch.testing.assert_close(flexed(ids, mask)[mask], reference(ids, mask)[mask], atol=1e-5, rtol=1e-5)
    assert spy.calls == SIZE["num_layers"]


def test_sliding_window_equals_dense(monkeypatch):
    spy = _Spy(monkeypatch)
    reference, flexed = _pair("gpt", position="rotary", sliding_window=6, global_layer_every=2)
    ids, mask = _padded()
    with torch.no_grad():
        torch.testing.assert_close(flexed(ids, mask)[mask], reference(ids, mask)[mask], atol=1e-5, rtol=1e-5)
    assert spy.calls == SIZE["num_layers"]


@pytest.mark.parametrize("family,fields", [("gpt", {"position": "alibi"}), ("t5", {}),
                                           ("gpt", {"position": "rotary", "sliding_window": 4})])
def test_cached_generation_equals_dense(family, fields):
    reference, flexed = _pair(family, **fields)
    ids, mask = _padded(t=12)
    expected = generate(reference, ids, mask, max_new_tokens=10, eos_token_id=None)
    assert torch.equal(generate(flexed, ids, mask, max_new_tokens=10, eos_token_id=None), expected)


@pytest.mark.parametrize("implementation", ["sdpa", "flex"])
def test_document_mask_equals_separate_documents(implementation):
    """Packed documents with document ids (positions restarting per document) give each document
    exactly what it gets alone — dense and FlexAttention alike."""
    model = GPT(GPTConfig(**SIZE, position="rotary", attn_implementation=implementation)).eval()
    eos = 3
    first, second = torch.randint(4, 61, (1, 7)), torch.randint(4, 61, (1, 9))
    first[0, -1] = eos
    packed = torch.cat((first, second), dim=1)
    docs = document_ids(packed, eos)
    assert docs.tolist() == [[0] * 7 + [1] * 9]
    positions = torch.cat((torch.arange(7), torch.arange(9)))[None]
    with torch.no_grad():
        together = model(packed, position_ids=positions, document_ids=docs)
        alone = torch.cat((model(first), model(second)), dim=1)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_falls_back_to_dense_where_flex_cannot_run():
    """Plain causal attention keeps SDPA's is_causal path; on a CPU, a forward that records
    gradients (FlexAttention has no CPU backward) and attention dropout take the dense mask."""
    _, model = _pair("gpt", position="alibi")
    stack = model.decoder
    mask = torch.ones(2, 10, dtype=torch.bool)
    args = dict(attention_mask=mask, position_ids=None, key_positions=None, document_ids=None, cached=False)
    with torch.no_grad():
        assert isinstance(stack_flex_masks(stack, 10, 10, torch.device("cpu"), **args)[None][0], FlexMask)
        assert stack_flex_masks(stack, 1, 10, torch.device("cpu"), **args) is None  # a decoding step
    assert stack_flex_masks(stack, 10, 10, torch.device("cpu"), **args) is None  # grad on, CPU
    plain = GPT(GPTConfig(**SIZE, attn_implementation="flex")).decoder
    with torch.no_grad():
        assert stack_flex_masks(plain, 10, 10, torch.device("cpu"), **{**args, "attention_mask": None}) is None


def test_training_on_cpu_with_flex_config_uses_the_dense_path():
    reference, flexed = _pair("gpt", position="alibi")
    ids, mask = _padded()
    flexed.train(), reference.train()
    flexed(ids, mask).sum().backward()
    reference(ids, mask).sum().backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), flexed.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's backward needs a GPU")
@pytest.mark.parametrize("position", ["alibi", "relative"])
def test_gpu_training_through_flex_equals_dense(position, monkeypatch):
    monkeypatch.setattr(flex, "COMPILE_KERNELS", True)
    reference, flexed = (m.cuda().train() for m in _pair("gpt", position=position))
    ids, mask = (x.cuda() for x in _padded(t=128))
    (reference(ids, mask)[mask].float().square().mean()).backward()
    (flexed(ids, mask)[mask].float().square().mean()).backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), flexed.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("t,s", [(40, 40), (3, 9), (1, 5)])
def test_t5_dense_bias_equals_the_module_with_its_gradient(bidirectional, t, s):
    """The stack's per-offset T5 bias (default positions) equals the module's per-pair lookup, and
    sends the embedding the same gradient."""
    module = T5RelativeBias(4, bidirectional=bidirectional, num_buckets=32, max_distance=20)
    weights = torch.randn(1, 4, t, s)
    expected = module(torch.arange(s - t, s)[None], torch.arange(s)[None])
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), module.embedding.weight)
    got = t5_dense_bias(module, t, s)
    (grad,) = torch.autograd.grad((got * weights).sum(), module.embedding.weight)
    assert torch.equal(got, expected)
    torch.testing.assert_close(grad, expected_grad)
