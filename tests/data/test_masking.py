"""BERT's masking (data/masking.py): selection statistics, the collator, whole-word masking."""
import numpy as np
import pytest

from minitransfer import AutoTokenizer, seeding
from minitransfer.data.masking import MLMMasker
from minitransfer.data.shipped import shipped_data_path
from minitransfer.tasks.mlm.data import read_text_lines

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
    seeding.manual_seed(0)
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
