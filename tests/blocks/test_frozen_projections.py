"""Stacked q/k/v weights are reused only while weights cannot change: an optimizer step between two
no-grad forwards (fused AdamW updates in place without moving version counters) is always seen."""

import torch

from zoo.blocks.attention import MultiHeadAttention, frozen_projections
from zoo.generation import generate
from zoo.models import GPT, GPTConfig


def test_no_grad_forward_sees_every_optimizer_step():
    attention = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    optimizer = torch.optim.AdamW(attention.parameters(), lr=0.1, fused=True)
    with torch.no_grad():
        before = attention(x)
    attention(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = attention(x)
        reference = attention.out_proj(torch.nn.functional.scaled_dot_product_attention(
            *(attention._heads(proj(x), 4) for proj in (attention.q_proj, attention.k_proj, attention.v_proj))
        ).transpose(1, 2).reshape(2, 5, 16))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference)


def test_stack_is_kept_inside_the_block_only():
    attention = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 3, 16)
    with torch.no_grad(), frozen_projections(attention):
        attention(x)
        assert attention._stacked
    assert attention._stacked is None


def test_generation_after_more_training_uses_the_new_weights():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, max_seq_len=32, embed_dim=16, num_layers=1, num_heads=2, dropout=0.0))
    prompt = torch.tensor([[1, 2, 3]])
    generate(model, prompt, max_new_tokens=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    model(prompt).logsumexp(-1).sum().backward()
    optimizer.step()
    fresh = GPT(model.config)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(model.eval()(prompt), fresh.eval()(prompt))
    assert torch.equal(generate(model, prompt, max_new_tokens=4), generate(fresh, prompt, max_new_tokens=4))


def test_frozen_output_head_is_the_same_product_and_is_freed():
    """Generation multiplies by the LM head's weight transposed once (faster on a CPU for a few rows);
    the scores are the head's, and nothing is kept after the block."""
    from zoo.models.base import frozen_output_head

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, max_seq_len=16, embed_dim=16, num_layers=1, num_heads=2)).eval()
    hidden = torch.randn(3, 16)
    with torch.no_grad():
        expected = model.lm_head(hidden)
        with frozen_output_head(model):
            assert model._head_weight_t.shape == (16, 50) and model._head_weight_t.is_contiguous()
            torch.testing.assert_close(model.vocab_projection(hidden), expected)
    assert model._head_weight_t is None
    with frozen_output_head(model):  # with gradients recorded, the module itself runs
        out = model.vocab_projection(hidden)
        assert out.grad_fn is not None
        out.sum().backward()
    assert model.lm_head.weight.grad is not None


def test_frozen_stack_is_the_same_projection():
    attention = MultiHeadAttention(16, 4, num_kv_heads=2).eval()
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        expected = attention(x)
        with frozen_projections(attention):
            torch.testing.assert_close(attention(x), expected)
            weight_t, _ = next(iter(attention._stacked.values()))
            assert weight_t.shape == (16, 16 + 2 * 8) and weight_t.is_contiguous()
