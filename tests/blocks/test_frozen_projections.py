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
