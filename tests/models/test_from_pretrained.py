"""from_pretrained's keywords: config=, ignore_mismatched_sizes, dtype / torch_dtype, output_loading_info."""
import json

import numpy as np
import pytest

import minitransfer as mt
from minitransfer.errors import CheckpointError, ConfigError
from minitransfer.models import (
    AutoModel,
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    BertModel,
)
from minitransfer.models.config import ModelConfig

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def three_label_classifier(checkpoints, tmp_path_factory):
    """A BERT classifier checkpoint with num_labels=3 (trained heads are saved like this)."""
    path, _ = checkpoints["bert", "safetensors"]
    folder = tmp_path_factory.mktemp("clf3")
    mt.manual_seed(1)
    BertForSequenceClassification.from_pretrained(path, num_labels=3).save_pretrained(folder)
    return folder


def test_shape_mismatch_is_an_error_that_names_the_flag(three_label_classifier):
    with pytest.raises(CheckpointError, match=r"classifier\.weight: \(3, 32\) in the checkpoint, \(2, 32\) in the "
                                              r"model.*ignore_mismatched_sizes=True"):
        BertForSequenceClassification.from_pretrained(three_label_classifier, num_labels=2)


def test_ignore_mismatched_sizes_reinitializes_and_reports(three_label_classifier):
    saved = BertForSequenceClassification.from_pretrained(three_label_classifier).state_dict()
    mt.manual_seed(7)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        three_label_classifier, num_labels=2, ignore_mismatched_sizes=True, output_loading_info=True
    )
    expected = [("classifier.weight", (3, 32), (2, 32)), ("classifier.bias", (3,), (2,))]
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": expected, "error_msgs": []}
    assert model.loading_info["mismatched_keys"] == expected
    # The new head is exactly a fresh initialization (same seed, same build order), not the checkpoint's rows.
    mt.manual_seed(7)
    fresh = BertForSequenceClassification(model.config).state_dict()
    state = model.state_dict()
    np.testing.assert_array_equal(state["classifier.weight"], fresh["classifier.weight"])
    assert not np.allclose(state["classifier.weight"], saved["classifier.weight"][:2])
    for name in saved:
        if not name.startswith("classifier."):
            np.testing.assert_array_equal(state[name], saved[name], err_msg=name)
    # transformers reports the same tensors as mismatched.
    _, theirs = transformers.AutoModelForSequenceClassification.from_pretrained(
        three_label_classifier, num_labels=2, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert {k for k, *_ in theirs["mismatched_keys"]} == {k for k, *_ in expected}


def test_output_loading_info_without_mismatches(checkpoints):
    path, _ = checkpoints["bert", "safetensors"]
    model, info = BertModel.from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert model.loading_info == {"missing_keys": [], "unexpected_keys": []}


def test_config_replaces_config_json(checkpoints, tmp_path):
    path, _ = checkpoints["bert", "safetensors"]
    own = ModelConfig.from_json_file(path / "config.json")
    changed = own.update({"layer_norm_eps": 1e-6, "num_labels": 5})
    model = AutoModelForSequenceClassification.from_pretrained(path, config=changed, hidden_dropout_prob=0.0)
    assert model.config.layer_norm_eps == 1e-6 and model.classifier.weight.shape == (5, 32)
    assert model.config.hidden_dropout_prob == 0.0
    assert changed.hidden_dropout_prob == 0.1  # the caller's config is copied, not changed
    # A dict, a config.json file and a model folder work too.
    as_dict = changed.to_dict()
    assert BertModel.from_pretrained(path, config=as_dict).config.layer_norm_eps == 1e-6
    (tmp_path / "my-config.json").write_text(json.dumps(as_dict))
    assert BertModel.from_pretrained(path, config=tmp_path / "my-config.json").config.layer_norm_eps == 1e-6
    changed.save(tmp_path / "folder")
    assert BertModel.from_pretrained(path, config=str(tmp_path / "folder")).config.layer_norm_eps == 1e-6
    with pytest.raises(ConfigError, match="config= takes a ModelConfig"):
        BertModel.from_pretrained(path, config=3)
    distil = ModelConfig("distilbert", dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    with pytest.raises(CheckpointError, match="config= holds a 'distilbert' config but BertModel"):
        BertModel.from_pretrained(path, config=distil)


def test_auto_class_follows_config(checkpoints):
    path, _ = checkpoints["distilbert", "safetensors"]
    config = ModelConfig.from_json_file(path / "config.json")
    model = AutoModel.from_pretrained(path, config=config.update({"dropout": 0.0}))
    assert type(model).__name__ == "DistilBertModel" and model.config.dropout == 0.0


@pytest.mark.parametrize("value", [None, "auto", "float32", np.float32, np.dtype("float32"), "torch.float32"])
@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_float32_dtypes_are_accepted(checkpoints, keyword, value):
    path, _ = checkpoints["bert", "safetensors"]
    value = torch.float32 if value == "torch.float32" else value
    model = BertModel.from_pretrained(path, **{keyword: value})
    assert {p.data.dtype for p in model.parameters()} == {np.dtype(np.float32)}


@pytest.mark.parametrize("value", ["float16", "bfloat16", "float64", np.float16, "torch.bfloat16", "int8"])
@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_other_dtypes_are_an_error(checkpoints, keyword, value):
    path, _ = checkpoints["bert", "safetensors"]
    value = torch.bfloat16 if value == "torch.bfloat16" else value
    with pytest.raises(ConfigError, match=rf"{keyword}=.*keeps float32 parameters"):
        BertModel.from_pretrained(path, **{keyword: value})


def test_unknown_keywords_still_fail(checkpoints):
    path, _ = checkpoints["bert", "safetensors"]
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['device_map'\]"):
        BertModel.from_pretrained(path, device_map="auto")
