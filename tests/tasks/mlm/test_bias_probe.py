"""Bias probe: distributions at the mask against the full model's softmax, the ranking, the template file."""
import numpy as np
import pytest

from minitransfer import AutoTokenizer, seeding
from minitransfer.errors import InputError
from minitransfer.models import BertForMaskedLM, ModelConfig
from minitransfer.tasks.mlm.bias_probe import compare_pair, mask_distribution, probe_bias, read_template_pairs


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def tiny_mlm():
    seeding.manual_seed(2)
    config = ModelConfig("bert", hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64, initializer_range=0.5)  # wide init: peaked distributions
    return BertForMaskedLM(config).eval()


def softmax_at_mask(model, tokenizer, text):
    enc = tokenizer([text], return_tensors="np")
    position = int(np.flatnonzero(enc["input_ids"][0] == tokenizer.mask_token_id)[0])
    logits = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).logits.numpy()[0, position]
    probs = np.exp(logits.astype(np.float64) - logits.max())
    return probs / probs.sum()


def test_distribution_and_pair_statistics_match_numpy(tokenizer, tiny_mlm):
    first, second = "He was very [MASK].", "She was very [MASK]."
    p, q = softmax_at_mask(tiny_mlm, tokenizer, first), softmax_at_mask(tiny_mlm, tokenizer, second)
    np.testing.assert_allclose(mask_distribution(tiny_mlm, tokenizer, first), p, rtol=1e-4, atol=1e-9)
    result = compare_pair(tiny_mlm, tokenizer, first, second, top_n=4)
    np.testing.assert_allclose(result["total_variation"], 0.5 * np.abs(p - q).sum(), rtol=1e-3)
    assert result["total_variation"] > 0
    gaps_first = [a - b for _, a, b in result["toward_first"]]
    gaps_second = [b - a for _, a, b in result["toward_second"]]
    assert gaps_first == sorted(gaps_first, reverse=True) and gaps_first[0] > 0
    assert gaps_second == sorted(gaps_second, reverse=True) and gaps_second[0] > 0
    words = [w for w, *_ in result["toward_first"] + result["toward_second"]]
    assert all(w.isalpha() for w in words)
    vocab = tokenizer.get_vocab()
    best = max((i for w, i in vocab.items() if w.isalpha()), key=lambda i: p[i] - q[i])
    assert result["toward_first"][0][0] == tokenizer.convert_ids_to_tokens(best)


def test_identical_templates_differ_by_nothing(tokenizer, tiny_mlm):
    (result,) = probe_bias(tiny_mlm, tokenizer, [("He was [MASK].", "He was [MASK].")], top_n=2)
    assert result["total_variation"] < 1e-6


def test_template_file(tmp_path):
    good = tmp_path / "pairs.tsv"
    good.write_text("# comment\nHe is a [MASK].\tShe is a [MASK].\n\nThe man [MASK].\tThe woman [MASK].\n")
    assert read_template_pairs(good) == [("He is a [MASK].", "She is a [MASK]."),
                                         ("The man [MASK].", "The woman [MASK].")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("He is a [MASK].\tShe is a nurse.\n")
    with pytest.raises(InputError, match=r"bad.tsv:1: .*exactly one \[MASK\]"):
        read_template_pairs(bad)
    bad.write_text("He is a [MASK]. She is a [MASK].\n")
    with pytest.raises(InputError, match="separated by one tab"):
        read_template_pairs(bad)
