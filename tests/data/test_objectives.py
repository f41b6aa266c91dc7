"""Objectives on real token ids: packing, BERT masking statistics, T5 span corruption."""

import pytest
import torch

from zoo.data.objectives import (
    IGNORE_INDEX,
    CLMCollator,
    MLMCollator,
    SpanCorruptionCollator,
    corrupt_spans,
    mask_tokens,
    pack_blocks,
    pad_sequences,
    random_spans_noise_mask,
    span_corruption_lengths,
    span_corruption_raw_length,
)
from zoo.data.tokenizers import SentencePieceTokenizer


@pytest.fixture(scope="module")
def token_docs(spm_tokenizer: SentencePieceTokenizer, corpus: list[str]) -> list[list[int]]:
    """Real documents as token ids (no specials)."""
    return spm_tokenizer.encode_batch(corpus[300:700])


# ---------------------------------------------------------------------------------------------
# Packing


def test_pack_blocks_small_exact_case() -> None:
    assert pack_blocks([[1, 2, 3], [4, 5]], 3, eos_id=9) == [[1, 2, 3], [9, 4, 5]]  # tail [9] dropped
    assert pack_blocks([[1, 2], [4]], 3, eos_id=9, bos_id=8) == [[8, 1, 2], [9, 8, 4]]
    assert pack_blocks([[1, 2, 3], [4, 5]], 3, eos_id=9, drop_remainder=False)[-1] == [9]
    assert pack_blocks([[1]], 5, eos_id=9) == []


def test_pack_blocks_on_real_documents(token_docs: list[list[int]], spm_tokenizer) -> None:
    eos = spm_tokenizer.eos_id
    blocks = pack_blocks(token_docs, 64, eos_id=eos)
    stream = [i for doc in token_docs for i in [*doc, eos]]
    assert all(len(block) == 64 for block in blocks)
    assert len(blocks) == len(stream) // 64
    assert [i for block in blocks for i in block] == stream[: len(blocks) * 64]
    assert sum(block.count(eos) for block in blocks) >= len(token_docs) - 1  # only the tail's eos lost


def test_clm_collator() -> None:
    batch = CLMCollator()([{"input_ids": [5, 6, 7]}, {"input_ids": torch.tensor([8, 9, 10])}])
    assert set(batch) == {"input_ids", "labels"}
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape == (2, 3)
    assert torch.equal(batch["labels"], batch["input_ids"])
    batch["labels"][0, 0] = -100
    assert batch["input_ids"][0, 0] == 5, "labels must not alias input_ids"


def test_pad_sequences() -> None:
    ids, mask = pad_sequences([[1, 2, 3], [4]], pad_value=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.dtype == torch.bool and mask.tolist() == [[True] * 3, [True, False, False]]


# ---------------------------------------------------------------------------------------------
# MLM


def _mlm_collator(tokenizer: SentencePieceTokenizer, **kwargs) -> MLMCollator:
    return MLMCollator(
        pad_id=tokenizer.pad_id,
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
        mask_id=tokenizer.mask_id,
        special_ids=tokenizer.special_ids,
        vocab_size=tokenizer.vocab_size,
        **kwargs,
    )


def test_mlm_masking_statistics(token_docs: list[list[int]], spm_tokenizer) -> None:
    tok = spm_tokenizer
    examples = [{"input_ids": block} for block in pack_blocks(token_docs, 126, eos_id=tok.eos_id, drop_remainder=False)]
    collate = _mlm_collator(tok, max_seq_len=128, seed=0)
    original, _ = pad_sequences([[tok.cls_id, *e["input_ids"], tok.sep_id] for e in examples], tok.pad_id)
    batch = collate(examples)
    inputs, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    special = torch.isin(original, torch.tensor(tok.special_ids))
    maskable = mask & ~special
    picked = labels != IGNORE_INDEX
    n_picked = int(picked.sum())
    assert n_picked > 5000, "the sample must be large enough for the tolerances below"

    assert abs(n_picked / int(maskable.sum()) - 0.15) < 0.005
    assert not (picked & ~maskable).any(), "specials, eos separators and padding are never picked"
    assert torch.equal(labels[picked], original[picked])
    assert torch.equal(inputs[~picked], original[~picked]), "unpicked positions are untouched"

    to_mask = picked & (inputs == tok.mask_id)
    kept = picked & (inputs == original)
    to_random = picked & ~to_mask & ~kept
    assert abs(int(to_mask.sum()) / n_picked - 0.8) < 0.02
    assert abs(int(kept.sum()) / n_picked - 0.1) < 0.015  # includes the rare random draw of itself
    assert abs(int(to_random.sum()) / n_picked - 0.1) < 0.015
    assert not torch.isin(inputs[to_random], torch.tensor(tok.special_ids)).any()


def test_mask_tokens_is_reproducible_and_picks_at_least_one() -> None:
    ids = torch.arange(10, 40).view(3, 10)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[2] = False
    maskable[2, 4] = True  # one candidate: still gets a prediction
    args = {"maskable": maskable, "mask_id": 4, "random_ids": torch.arange(10, 100)}
    first = mask_tokens(ids, generator=torch.Generator().manual_seed(1), **args)
    again = mask_tokens(ids, generator=torch.Generator().manual_seed(1), **args)
    other = mask_tokens(ids, generator=torch.Generator().manual_seed(2), **args)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    assert ((first[1] != IGNORE_INDEX).sum(dim=1) == torch.tensor([2, 2, 1])).all()  # round(0.15 * 10) = 2


def test_mlm_collator_layout_and_randomness(token_docs: list[list[int]], spm_tokenizer) -> None:
    tok = spm_tokenizer
    examples = [{"input_ids": token_docs[0][:200]}, {"input_ids": token_docs[1][:5]}]
    batch = _mlm_collator(tok, max_seq_len=32, seed=3)(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, 32)
    assert batch["attention_mask"].dtype == torch.bool and batch["labels"].dtype == torch.long
    assert batch["attention_mask"].sum(dim=1).tolist() == [32, 7]
    assert batch["input_ids"][:, 0].tolist() == [tok.cls_id] * 2
    assert batch["input_ids"][0, 31] == tok.sep_id and batch["input_ids"][1, 6] == tok.sep_id
    assert (batch["input_ids"][1, 7:] == tok.pad_id).all() and (batch["labels"][1, 7:] == IGNORE_INDEX).all()

    # Training collator: same seed, same masks; consecutive calls (epochs) differ.
    train_a, train_b = _mlm_collator(tok, seed=3), _mlm_collator(tok, seed=3)
    first = train_a(examples)["labels"]
    assert torch.equal(first, train_b(examples)["labels"])
    assert not torch.equal(first, train_a(examples)["labels"])
    # Validation collator: the same batch always gets the same masks.
    val = _mlm_collator(tok, seed=3, deterministic=True)
    assert torch.equal(val(examples)["labels"], val(examples)["labels"])


# ---------------------------------------------------------------------------------------------
# Span corruption


def _expand(inputs: list[int], targets: list[int], sentinels: list[int], eos: int) -> list[int]:
    """Put each target span back where its sentinel sits in the inputs."""
    spans: dict[int, list[int]] = {}
    current = None
    sentinel_set = set(sentinels)
    for token in targets[:-1]:
        if token in sentinel_set:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    assert targets[-1] == eos
    return [i for token in inputs[:-1] for i in spans.get(token, [token])]


def test_noise_mask_follows_t5(spm_tokenizer) -> None:
    generator = torch.Generator().manual_seed(0)
    total_noise = total = 0
    for length in range(20, 400, 7):
        noise = random_spans_noise_mask(length, 0.15, 3.0, generator)
        n = round(length * 0.15)
        starts = noise & ~torch.cat([torch.tensor([False]), noise[:-1]])
        assert int(noise.sum()) == n
        assert int(starts.sum()) == max(round(n / 3.0), 1)
        assert not noise[0] and noise[-1], "T5 masks start with kept tokens and end with noise"
        total_noise, total = total_noise + int(noise.sum()), total + length
    assert abs(total_noise / total - 0.15) < 0.005
    assert not random_spans_noise_mask(1).any()


def test_span_corruption_reconstructs_real_text(token_docs: list[list[int]], spm_tokenizer) -> None:
    tok, sentinels = spm_tokenizer, spm_tokenizer.sentinel_ids
    sentinel_set = set(sentinels)
    generator = torch.Generator().manual_seed(0)
    noise_tokens = total = 0
    for ids in pack_blocks(token_docs[:200], 141, eos_id=tok.eos_id):
        noise = random_spans_noise_mask(len(ids), 0.15, 3.0, generator)
        inputs, targets = corrupt_spans(ids, noise, sentinel_ids=sentinels, eos_id=tok.eos_id)
        assert _expand(inputs, targets, sentinels, tok.eos_id) == ids
        assert (len(inputs), len(targets)) == span_corruption_lengths(len(ids))[:2]
        assert len(inputs) <= 128 and inputs[-1] == tok.eos_id
        used = [i for i in inputs if i in sentinel_set]
        assert used == sentinels[: len(used)], "sentinels are used in order"
        noise_tokens += len(targets) - len(used) - 1
        total += len(ids)
    assert abs(noise_tokens / total - 0.15) < 0.005


def test_corrupt_spans_example() -> None:
    inputs, targets = corrupt_spans(
        [10, 11, 12, 13, 14], torch.tensor([False, False, True, True, False]), sentinel_ids=[7, 8], eos_id=3
    )
    assert (inputs, targets) == ([10, 11, 7, 14, 3], [7, 12, 13, 3])
    with pytest.raises(ValueError, match="sentinels"):
        corrupt_spans([1, 2, 3], torch.tensor([True, False, True]), sentinel_ids=[7], eos_id=3)


@pytest.mark.parametrize("max_len", [16, 64, 128, 512])
def test_raw_length_fills_the_encoder(max_len: int) -> None:
    raw = span_corruption_raw_length(max_len)
    assert span_corruption_lengths(raw)[0] <= max_len < span_corruption_lengths(raw + 1)[0]
    assert raw > max_len  # corruption shortens, so T5 reads more raw tokens than it feeds


def test_span_collator(token_docs: list[list[int]], spm_tokenizer) -> None:
    tok = spm_tokenizer
    collate = SpanCorruptionCollator(
        pad_id=tok.pad_id, eos_id=tok.eos_id, sentinel_ids=tok.sentinel_ids, seed=0, deterministic=True
    )
    examples = [{"input_ids": token_docs[0][:141]}, {"input_ids": token_docs[1][:20]}]
    batch = collate(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "decoder_input_ids", "decoder_attention_mask"}
    b, s = batch["input_ids"].shape
    t = batch["labels"].shape[1]
    assert b == 2 and s <= 128
    assert batch["decoder_input_ids"].shape == batch["decoder_attention_mask"].shape == (2, t)
    assert batch["attention_mask"].dtype == batch["decoder_attention_mask"].dtype == torch.bool
    labels, dec = batch["labels"], batch["decoder_input_ids"]
    assert (labels[~batch["decoder_attention_mask"]] == IGNORE_INDEX).all()
    assert (batch["input_ids"][~batch["attention_mask"]] == tok.pad_id).all()
    assert (dec[:, 0] == tok.pad_id).all()
    real = batch["decoder_attention_mask"]
    assert torch.equal(dec[:, 1:][real[:, 1:]], labels[:, :-1][real[:, 1:]]), "decoder inputs = labels shifted right"
    for row in range(2):
        inputs = batch["input_ids"][row][batch["attention_mask"][row]].tolist()
        targets = labels[row][real[row]].tolist()
        assert _expand(inputs, targets, tok.sentinel_ids, tok.eos_id) == examples[row]["input_ids"]
    assert torch.equal(collate(examples)["labels"], labels), "validation corruption is repeatable"
