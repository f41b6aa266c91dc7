"""The named options interop added to the families, on their own."""

from __future__ import annotations

import pytest
import torch

from zoo.models import BERT, T5, BertConfig, T5Config

TINY = dict(vocab_size=50, embed_dim=32, num_layers=1, num_heads=4, dropout=0.0)


def test_bert_segment_embeddings_default_to_segment_zero():
    model = BERT(BertConfig(**TINY, type_vocab_size=2)).eval()
    ids = torch.randint(0, 50, (2, 6))
    zeros, ones = torch.zeros_like(ids), torch.ones_like(ids)
    assert torch.equal(model(ids), model(ids, token_type_ids=zeros))
    assert not torch.allclose(model(ids), model(ids, token_type_ids=ones))
    assert BERT(BertConfig(**TINY)).embed_token_types is None  # 0 = none, the zoo default
    with pytest.raises(ValueError, match="type_vocab_size=0"):
        BERT(BertConfig(**TINY))(ids, token_type_ids=zeros)
    with pytest.raises(ValueError, match="type_vocab_size=-1"):
        BertConfig(**TINY, type_vocab_size=-1)


@pytest.mark.parametrize("tied", [True, False])
def test_t5_decoder_output_scale_follows_tying_unless_set(tied):
    ids = torch.randint(0, 50, (2, 5))
    torch.manual_seed(0)
    default = T5(T5Config(**TINY, tie_embeddings=tied)).eval()
    torch.manual_seed(0)
    flipped = T5(T5Config(**TINY, tie_embeddings=tied, scale_decoder_output=not tied)).eval()
    assert default.config.resolved_scale_decoder_output == tied
    with torch.no_grad():
        logits, other = default(ids, ids), flipped(ids, ids)
    torch.testing.assert_close(logits, other * (32**-0.5 if tied else 32**0.5))
