"""Masked-LM task: windows and hold-out, the sparse head, the model's own loss, pseudo-perplexity."""
import numpy as np
import pytest

from minitransfer import AutoTokenizer, ops, seeding
from minitransfer.data.masking import MLMMasker
from minitransfer.data.shipped import shipped_data_path
from minitransfer.errors import InputError
from minitransfer.models import BertForMaskedLM, DistilBertForMaskedLM, ModelConfig
from minitransfer.tasks.mlm.data import TextDataset, encode_texts, fixed_masking, read_text_lines, split_holdout
from minitransfer.tasks.mlm.perplexity import masked_lm_perplexity
from tests.data.test_masking import CLS, MASK, PAD, SEP, UNK, VOCAB, synthetic_batch


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


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
    seeding.manual_seed(0)
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
    np.testing.assert_allclose(tiny_mlm.logits_at(batch, rows, cols).numpy(),
                               full.logits.numpy()[rows, cols], rtol=1e-5, atol=1e-5)
    some = np.array([5, 400, 999])
    np.testing.assert_allclose(tiny_mlm.logits_at(batch, rows, cols, some).numpy(),
                               full.logits.numpy()[rows, cols][:, some], rtol=1e-5, atol=1e-5)
    sparse_loss = ops.cross_entropy(tiny_mlm.logits_at(batch, rows, cols), labels[rows, cols])
    np.testing.assert_allclose(sparse_loss.item(), full.loss.item(), rtol=1e-5)  # the model's loss: labelled tokens


def test_the_models_own_loss_trains_both_body_and_head(tiny_mlm):
    ids, attention = synthetic_batch(rows=4, seq=32, seed=4)
    corrupted, labels = MLMMasker(VOCAB, MASK, [UNK, SEP, PAD, CLS, MASK], PAD).mask(ids, attention,
                                                                                      np.random.default_rng(0))
    tiny_mlm.zero_grad()
    tiny_mlm(input_ids=corrupted, attention_mask=attention, labels=labels).loss.backward()
    grads = {name: p.grad for name, p in tiny_mlm.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
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
