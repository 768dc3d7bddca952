"""The collators against transformers' own, on the real MiniLM tokenizer and real sentences."""
import copy

import numpy as np
import pytest

import minitransfer as mt
from minitransfer.data.shipped import shipped_data_path
from minitransfer.errors import InputError
from minitransfer.tasks.classification.data import read_classification_file

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tok(minilm_path):
    return mt.AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def ref(minilm_path):
    return transformers.AutoTokenizer.from_pretrained(str(minilm_path))


@pytest.fixture(scope="module", params=["right", "left"])
def pair(minilm_path, request):
    """(ours, transformers') tokenizers padding on the same side."""
    side = request.param
    return (mt.AutoTokenizer.from_pretrained(minilm_path, padding_side=side),
            transformers.AutoTokenizer.from_pretrained(str(minilm_path), padding_side=side))


def features_of(ref, texts, **extra):
    """One unpadded feature dict (lists) per text, as a `datasets.map(tokenizer)` makes them."""
    return [dict(ref(text, **extra)) for text in texts]


def assert_same_batch(ours: dict, theirs: dict):
    assert set(ours) == set(theirs)
    for key in theirs:
        expected = np.asarray(theirs[key])
        assert isinstance(ours[key], np.ndarray), key
        assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)


@pytest.mark.parametrize("label_key", ["label", "label_ids", None])
@pytest.mark.parametrize("kw", [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 40}])
def test_with_padding_equals_transformers(pair, sentences, label_key, kw):
    ours_tok, ref = pair
    features = features_of(ref, sentences, return_special_tokens_mask=True)
    if label_key:
        for i, f in enumerate(features):
            f[label_key] = i % 2
    ours = mt.DataCollatorWithPadding(ours_tok, **kw)(copy.deepcopy(features))
    theirs = transformers.DataCollatorWithPadding(ref, **kw, return_tensors="np")(copy.deepcopy(features))
    assert_same_batch(ours, theirs)
    assert ("labels" in ours) == bool(label_key) and "label" not in ours


@pytest.mark.parametrize("label_key", ["labels", "label"])
@pytest.mark.parametrize("kw", [{}, {"pad_to_multiple_of": 8}, {"label_pad_token_id": -1}])
def test_token_classification_equals_transformers(pair, sentences, label_key, kw):
    ours_tok, ref = pair
    features = []
    for text in sentences:  # a tag per token: its word's index mod 3, -100 on [CLS]/[SEP]
        enc = ref(text)
        features.append(dict(enc) | {label_key: [-100 if w is None else w % 3 for w in enc.word_ids()]})
    ours = mt.DataCollatorForTokenClassification(ours_tok, **kw)(copy.deepcopy(features))
    theirs = transformers.DataCollatorForTokenClassification(ref, **kw, return_tensors="np")(copy.deepcopy(features))
    theirs["labels"] = theirs.pop(label_key)  # transformers keeps a per-token `label` key as it is
    assert_same_batch(ours, theirs)
    pad = kw.get("label_pad_token_id", -100)
    assert (ours["labels"][ours["attention_mask"] == 0] == pad).all()
    no_labels = [{k: v for k, v in f.items() if k != label_key} for f in features]
    assert_same_batch(mt.DataCollatorForTokenClassification(ours_tok)(no_labels),
                      transformers.DataCollatorForTokenClassification(ref, return_tensors="np")(no_labels))


def test_default_data_collator_equals_transformers(ref, sentences):
    fixed = [dict(ref(s, padding="max_length", truncation=True, max_length=24)) for s in sentences]
    cases = [
        [f | {"label": i % 2} for i, f in enumerate(fixed)],  # int labels -> int64
        [f | {"label": 0.5 * i} for i, f in enumerate(fixed)],  # float labels -> float32 (regression)
        [f | {"label_ids": [i, i + 1]} for i, f in enumerate(fixed)],  # several labels each
        [{k: np.asarray(v) for k, v in f.items()} | {"label": np.int64(1), "id": "x"} for f in fixed],
    ]
    for features in cases:
        ours = mt.default_data_collator(copy.deepcopy(features))
        theirs = transformers.default_data_collator(copy.deepcopy(features), return_tensors="np")
        assert_same_batch(ours, theirs)
    with pytest.raises(InputError, match="pad"):  # unequal lengths: no padding here
        mt.default_data_collator(features_of(ref, sentences))
    with pytest.raises(InputError, match="'np'"):
        mt.default_data_collator(fixed, return_tensors="pt")


def test_language_modeling_mlm_false_equals_transformers(pair, sentences):
    ours_tok, ref = pair
    for features in (features_of(ref, sentences), [ref.encode(s) for s in sentences]):  # dicts, bare id lists
        kw = {"mlm": False, "pad_to_multiple_of": 8}
        ours = mt.DataCollatorForLanguageModeling(ours_tok, **kw)(copy.deepcopy(features))
        theirs = transformers.DataCollatorForLanguageModeling(ref, **kw, return_tensors="np")(copy.deepcopy(features))
        assert_same_batch(ours, theirs)
        assert (ours["labels"][ours["input_ids"] == ref.pad_token_id] == -100).all()


@pytest.fixture(scope="module")
def sst2_features(ref):
    texts = read_classification_file(shipped_data_path("sst2/train_subset.tsv")).texts()[:3000]
    return features_of(ref, texts, return_special_tokens_mask=True)


def mask_statistics(collator, features, tokenizer, batch_size=64):
    """Masking counts over every batch of `features`: how many tokens could be masked, were, and how."""
    counts = dict.fromkeys(("maskable", "masked", "to_mask", "to_random", "kept", "special_masked",
                            "labels_off_mask", "changed_unmasked"), 0)
    special = np.asarray(tokenizer.all_special_ids)
    for start in range(0, len(features), batch_size):
        chunk = copy.deepcopy(features[start:start + batch_size])
        original = tokenizer.pad(copy.deepcopy(chunk), return_tensors="np")["input_ids"]
        batch = collator(chunk)
        ids, labels = np.asarray(batch["input_ids"]), np.asarray(batch["labels"])
        assert ids.shape == labels.shape == original.shape
        masked = labels != -100
        is_special = np.isin(original, special)
        counts["maskable"] += int((~is_special).sum())
        counts["masked"] += int(masked.sum())
        counts["special_masked"] += int((masked & is_special).sum())
        counts["labels_off_mask"] += int((labels[masked] != original[masked]).sum())
        counts["changed_unmasked"] += int((ids[~masked] != original[~masked]).sum())
        counts["to_mask"] += int((ids[masked] == tokenizer.mask_token_id).sum())
        counts["kept"] += int((ids[masked] == original[masked]).sum())
        counts["to_random"] += int(((ids[masked] != tokenizer.mask_token_id) & (ids[masked] != original[masked])).sum())
    return counts


def test_language_modeling_masking_statistics_match_transformers(tok, ref, sst2_features):
    """Masking is random: compare rates over ~40k tokens with BERT's and with what transformers' collator draws."""
    ours = mask_statistics(mt.DataCollatorForLanguageModeling(tok, seed=0), sst2_features, ref)
    theirs = mask_statistics(transformers.DataCollatorForLanguageModeling(ref, return_tensors="np", seed=0),
                             sst2_features, ref)
    assert ours["maskable"] == theirs["maskable"] > 30_000
    for counts in (ours, theirs):
        assert counts["special_masked"] == counts["labels_off_mask"] == counts["changed_unmasked"] == 0
        rate = counts["masked"] / counts["maskable"]
        assert abs(rate - 0.15) < 0.01, rate  # binomial sd ~0.002
        split = np.array([counts["to_mask"], counts["to_random"], counts["kept"]]) / counts["masked"]
        np.testing.assert_allclose(split, [0.8, 0.1, 0.1], atol=0.03)  # sd ~0.007 / 0.005
    assert abs(ours["masked"] - theirs["masked"]) / theirs["masked"] < 0.08


def test_language_modeling_options_and_structure(tok, ref, sentences):
    features = features_of(ref, sentences, return_special_tokens_mask=True)
    ours = mt.DataCollatorForLanguageModeling(tok, seed=1)(copy.deepcopy(features))
    theirs = transformers.DataCollatorForLanguageModeling(ref, return_tensors="np", seed=1)(copy.deepcopy(features))
    assert set(ours) == set(theirs) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    for key in theirs:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])
    # the same seed draws the same masks; the next call draws new ones
    a, b = mt.DataCollatorForLanguageModeling(tok, seed=3), mt.DataCollatorForLanguageModeling(tok, seed=3)
    first = a(copy.deepcopy(features))
    np.testing.assert_array_equal(first["labels"], b(copy.deepcopy(features))["labels"])
    assert not np.array_equal(first["labels"], a(copy.deepcopy(features))["labels"])
    # a special_tokens_mask feature is honoured: positions it marks are never masked
    marked = copy.deepcopy(features)
    for f in marked:
        f["special_tokens_mask"] = [1] * len(f["input_ids"])
    assert (mt.DataCollatorForLanguageModeling(tok, seed=0)(marked)["labels"] == -100).all()
    # all replaced by [MASK]: every masked position reads [MASK]
    every = mt.DataCollatorForLanguageModeling(tok, mlm_probability=0.5, mask_replace_prob=1.0, random_replace_prob=0.0,
                                               seed=0)(copy.deepcopy(features))
    assert (every["input_ids"][every["labels"] != -100] == tok.mask_token_id).all()
    with pytest.raises(InputError, match="'np'"):
        mt.DataCollatorForLanguageModeling(tok, return_tensors="pt")
    with pytest.raises(InputError, match="at most 1"):
        mt.DataCollatorForLanguageModeling(tok, mask_replace_prob=0.9, random_replace_prob=0.2)


def test_collators_feed_the_model(tok, minilm_path, sentences):
    """What the collators make is what the models take: a padded batch with labels runs forward and backward."""
    features = [dict(tok(s)) | {"label": i % 2} for i, s in enumerate(sentences)]
    batch = mt.DataCollatorWithPadding(tok, pad_to_multiple_of=8)(features)
    model = mt.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    out = model(**batch)
    assert out.logits.shape == (len(sentences), 2) and np.isfinite(out.loss.item())
