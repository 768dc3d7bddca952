"""Prompt classification: verbalizer scores and the PET loss against a NumPy reference, encoding, sampling."""
import numpy as np
import pytest

from minitransfer import AutoTokenizer, seeding
from minitransfer.data.shipped import shipped_data_path
from minitransfer.errors import InputError
from minitransfer.models import BertForMaskedLM, ModelConfig
from minitransfer.tasks.classification.data import read_classification_file
from minitransfer.tasks.prompting.prompts import (
    PromptClassifier,
    encode_prompts,
    verbalizer_logits,
    verbalizer_token_ids,
)
from minitransfer.tasks.prompting.recipe import sample_few_shot

TEXTS = ["a charming and often affecting journey .", "unflinchingly bleak and desperate",
         "the movie was a flat , lifeless rehash of better films that came before it ."]


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def tiny_mlm():
    seeding.manual_seed(1)
    config = ModelConfig("bert", hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)
    return BertForMaskedLM(config).eval()


def test_verbalizer_scores_and_pet_loss_match_numpy(tokenizer, tiny_mlm):
    data = encode_prompts(TEXTS, tokenizer, labels=np.array([1, 0, 0]))
    ids = verbalizer_token_ids(tokenizer, ["terrible", "great"])
    batch = data.batch(np.arange(3))
    scores = verbalizer_logits(tiny_mlm, batch, batch["mask_positions"], ids).numpy().astype(np.float64)
    full = tiny_mlm(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits.numpy()
    reference = full[np.arange(3), batch["mask_positions"]][:, ids].astype(np.float64)
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-6)
    out = PromptClassifier(tiny_mlm, ids)(**batch)
    log_probs = reference - reference.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    np.testing.assert_allclose(out.loss.item(), -log_probs[np.arange(3), batch["labels"]].mean(), rtol=1e-5)
    np.testing.assert_array_equal(out.logits.numpy().argmax(1), reference.argmax(1))


def test_pet_loss_moves_only_the_label_words_in_the_decoder(tokenizer, tiny_mlm):
    data = encode_prompts(TEXTS, tokenizer, labels=np.array([1, 0, 0]))
    ids = verbalizer_token_ids(tokenizer, ["terrible", "great"])
    tiny_mlm.zero_grad()
    PromptClassifier(tiny_mlm, ids)(**data.batch(np.arange(3))).loss.backward()
    bias_grad = tiny_mlm.cls.predictions.bias.grad.numpy()
    assert np.count_nonzero(bias_grad) == 2 and set(np.flatnonzero(bias_grad)) == set(ids)
    tiny_mlm.zero_grad()


def test_prompt_encoding_keeps_the_mask(tokenizer):
    data = encode_prompts(TEXTS, tokenizer, "Review: {text} It was [MASK].", max_length=16)
    ids = data.arrays["input_ids"]
    assert ids.shape[1] == 16
    np.testing.assert_array_equal(ids[np.arange(3), data.arrays["mask_positions"]], tokenizer.mask_token_id)
    short = tokenizer.convert_ids_to_tokens(ids[1][: data.arrays["attention_mask"][1].sum()].tolist())
    assert short[-4:] == ["was", "[MASK]", ".", "[SEP]"] and "bleak" in short  # the short text is whole


@pytest.mark.parametrize("words,pattern,message", [
    (["terrible", "unflinchingly"], "{text} It was [MASK].", "not one token"),
    (["great", "great"], "{text} It was [MASK].", "repeated"),
    (["terrible", "great"], "{text} It was good.", "exactly one"),
    (["terrible", "great"], "It was [MASK].", "placeholder"),
])
def test_bad_verbalizer_or_pattern_is_a_clear_error(tokenizer, words, pattern, message):
    with pytest.raises(InputError, match=message):
        verbalizer_token_ids(tokenizer, words)
        encode_prompts(TEXTS, tokenizer, pattern)


def test_few_shot_sample_is_balanced_seeded_and_distinct():
    data = read_classification_file(shipped_data_path("sst2/train_subset.tsv"), max_examples=400)
    a, b, c = sample_few_shot(data, 16, 0), sample_few_shot(data, 16, 0), sample_few_shot(data, 16, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(c))
    assert len(set(a.tolist())) == 16 and np.bincount(data.labels()[a]).tolist() == [8, 8]
    assert np.bincount(data.labels()[sample_few_shot(data, 5, 0)]).tolist() == [3, 2]
    with pytest.raises(InputError, match="at least one example per label"):
        sample_few_shot(data, 1, 0)
