"""Masked-LM task: the masking collator's statistics, whole-word masking, the sparse head, pseudo-perplexity."""
import numpy as np
import pytest

from minitransfer import AutoTokenizer
from minitransfer import random as mt_random
from minitransfer.errors import InputError
from minitransfer.models import BertForMaskedLM, DistilBertForMaskedLM, ModelConfig
from minitransfer.tasks import shipped_data_path
from minitransfer.tasks.mlm import (
    MaskedLMLoss,
    MLMMasker,
    TextDataset,
    encode_texts,
    fixed_masking,
    masked_lm_loss,
    masked_lm_perplexity,
    read_text_lines,
    split_holdout,
    token_logits_at,
)

VOCAB, CLS, SEP, PAD, MASK, UNK = 1000, 101, 102, 0, 103, 100


def synthetic_batch(rows=300, seq=128, seed=0):
    """[CLS] tokens [SEP] then padding, rows of random lengths."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(200, VOCAB, size=(rows, seq))
    mask = np.zeros((rows, seq), dtype=np.int64)
    for r, n in enumerate(rng.integers(10, seq + 1, size=rows)):
        ids[r, 0], ids[r, n - 1], ids[r, n:] = CLS, SEP, PAD
        mask[r, :n] = 1
    return ids, mask


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


def test_masking_statistics_follow_bert():
    masker = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD)
    ids, attention = synthetic_batch()
    corrupted, labels = masker.mask(ids, attention, np.random.default_rng(1))
    candidate = (attention == 1) & ~np.isin(ids, [CLS, SEP, PAD])
    selected = labels != -100
    assert not (selected & ~candidate).any(), "a special or padding token was selected"
    assert (corrupted[~selected] == ids[~selected]).all(), "an unselected token changed"
    assert (labels[selected] == ids[selected]).all(), "labels must hold the original ids"
    n = selected.sum()
    assert abs(n / candidate.sum() - 0.15) < 0.01, n / candidate.sum()
    masked = (corrupted == MASK) & selected
    kept = (corrupted == ids) & selected
    replaced = selected & ~masked & ~kept
    assert abs(masked.sum() / n - 0.8) < 0.02
    assert abs(replaced.sum() / n - 0.1) < 0.015
    assert abs(kept.sum() / n - 0.1) < 0.015
    assert not np.isin(corrupted[replaced], [UNK, SEP, PAD, CLS, MASK]).any(), "random replacement was special"


def test_collator_pads_masks_and_draws_anew_each_call():
    masker = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD)
    features = [{"input_ids": np.r_[CLS, np.arange(300, 300 + n), SEP], "attention_mask": np.ones(n + 2, np.int64)}
                for n in (40, 7, 60)]
    mt_random.manual_seed(0)
    first = masker(features)
    second = masker(features)
    assert first["input_ids"].shape == first["labels"].shape == (3, 62)
    assert (first["labels"][1, 9:] == -100).all() and (first["input_ids"][1, 9:] == PAD).all()
    assert not np.array_equal(first["labels"], second["labels"])


def test_whole_word_masking_selects_every_piece_of_a_word(tokenizer):
    lines = read_text_lines(shipped_data_path("movie_reviews/reviews.txt"))[:20]
    enc = tokenizer(lines, truncation=True, max_length=256, padding=True, return_tensors="np")
    masker = MLMMasker.from_tokenizer(tokenizer, whole_word=True)
    _, labels = masker.mask(enc["input_ids"], enc["attention_mask"], np.random.default_rng(0))
    selected = labels != -100
    multi_piece_words = 0
    for row in range(len(lines)):
        words = {}
        for position, word in enumerate(enc.word_ids(row)):
            if word is not None:
                words.setdefault(word, []).append(position)
        for positions in words.values():
            assert len(set(selected[row, positions])) == 1, "a word was only partly selected"
            multi_piece_words += len(positions) > 1 and selected[row, positions[0]]
    assert multi_piece_words > 5  # the check above saw selected words of several pieces
    candidates = enc["attention_mask"].sum() - 2 * len(lines)
    assert abs(selected.sum() / candidates - 0.15) < 0.02


def test_whole_word_rule_on_synthetic_pieces():
    continuation = np.zeros(VOCAB, dtype=bool)
    continuation[500:600] = True  # ids 500..599 are "##" pieces
    masker = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD, mlm_probability=0.5, continuation=continuation)
    word = [300, 500, 501, 502]  # one word of four pieces, then one-piece words
    ids = np.array([[CLS] + word * 30 + [SEP]])
    for seed in range(5):
        selected = masker.select(ids, None, np.random.default_rng(seed))[0, 1:-1].reshape(30, 4)
        assert (selected == selected[:, :1]).all()


def test_split_holdout_and_windows(tokenizer):
    lines = read_text_lines(shipped_data_path("movie_reviews/reviews.txt"))
    train, held = split_holdout(lines, 0.1)
    assert len(held) == 6 and held == lines[-6:] and train == lines[:-6]
    one = encode_texts(lines[:3], tokenizer, 64, windows_per_text=1)
    two = encode_texts(lines[:3], tokenizer, 64, windows_per_text=2)
    every = encode_texts(lines[:3], tokenizer, 64, windows_per_text=0)
    assert len(one) == 3 and len(two) == 6 and len(every) > 6
    text_tokens = sum(len(tokenizer.encode(line, add_special_tokens=False)) for line in lines[:3])
    assert every.num_tokens() - 2 * len(every) == text_tokens  # every token is in exactly one window
    with pytest.raises(InputError, match="leaves nothing to train on"):
        split_holdout(lines[:1], 0.5)


@pytest.fixture(scope="module", params=["bert", "distilbert"])
def tiny_mlm(request):
    mt_random.manual_seed(0)
    if request.param == "bert":
        config = ModelConfig("bert", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=64)
        return BertForMaskedLM(config).eval()
    config = ModelConfig("distilbert", vocab_size=VOCAB, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                         max_position_embeddings=64)
    return DistilBertForMaskedLM(config).eval()


def test_sparse_head_equals_full_logits_and_loss(tiny_mlm):
    ids, attention = synthetic_batch(rows=6, seq=40, seed=2)
    masker = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD)
    corrupted, labels = masker.mask(ids, attention, np.random.default_rng(3))
    batch = {"input_ids": corrupted, "attention_mask": attention}
    full = tiny_mlm(corrupted, attention, labels=labels)
    rows, cols = np.nonzero(labels != -100)
    np.testing.assert_allclose(token_logits_at(tiny_mlm, batch, rows, cols).numpy(),
                               full.logits.numpy()[rows, cols], rtol=1e-5, atol=1e-5)
    some = np.array([5, 400, 999])
    np.testing.assert_allclose(token_logits_at(tiny_mlm, batch, rows, cols, some).numpy(),
                               full.logits.numpy()[rows, cols][:, some], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(masked_lm_loss(tiny_mlm, batch, labels).item(), full.loss.item(), rtol=1e-5)


def test_wrapper_trains_both_body_and_head(tiny_mlm):
    ids, attention = synthetic_batch(rows=4, seq=32, seed=4)
    corrupted, labels = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD).mask(ids, attention,
                                                                                      np.random.default_rng(0))
    wrapped = MaskedLMLoss(tiny_mlm)
    tiny_mlm.zero_grad()
    wrapped(input_ids=corrupted, attention_mask=attention, labels=labels).loss.backward()
    grads = {name: p.grad for name, p in tiny_mlm.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert set(wrapped.state_dict()) == set(tiny_mlm.state_dict())  # checkpoints keep the model's own names
    tiny_mlm.zero_grad()


def test_perplexity_matches_a_numpy_reference_and_is_fixed(tiny_mlm):
    masker = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD)
    ids, attention = synthetic_batch(rows=10, seq=24, seed=5)
    data = TextDataset([{"input_ids": r[m == 1], "attention_mask": m[m == 1]} for r, m in zip(ids, attention)])
    fixed, again = fixed_masking(data, masker, seed=7), fixed_masking(data, masker, seed=7)
    np.testing.assert_array_equal(fixed.arrays["labels"], again.arrays["labels"])
    result = masked_lm_perplexity(tiny_mlm, fixed, batch_size=3)
    logits = tiny_mlm(fixed.arrays["input_ids"], fixed.arrays["attention_mask"]).logits.numpy().astype(np.float64)
    labels = fixed.arrays["labels"]
    rows, cols = np.nonzero(labels != -100)
    picked = logits[rows, cols]
    log_probs = picked - picked.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    nll = -log_probs[np.arange(len(rows)), labels[rows, cols]].mean()
    assert result["masked_tokens"] == len(rows)
    np.testing.assert_allclose(result["perplexity"], np.exp(nll), rtol=1e-4)
