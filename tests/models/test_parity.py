"""Parity with Hugging Face transformers on the same weights: hidden states, MLM logits, gradients.

Tolerances: float32 end to end, so 1e-4 absolute on activations of order 1 leaves room only for
summation-order differences between BLAS libraries (observed ~1e-5), not for a wrong op.
"""
import numpy as np
import pytest

import minitransfer
from minitransfer.models import AutoModel, AutoModelForMaskedLM, BertForMaskedLM, DistilBertModel
from minitransfer.tokenization import AutoTokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NO_DROPOUT = {"bert": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
              "distilbert": dict(dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0, qa_dropout=0.0)}


def batch(minilm_path, sentences, distil=False):
    enc = AutoTokenizer.from_pretrained(minilm_path)(sentences, padding=True, return_tensors="np")
    assert enc["attention_mask"].min() == 0, "the batch must contain padding"
    if distil:
        enc.pop("token_type_ids")
    return dict(enc)


def torch_inputs(enc):
    return {k: torch.tensor(v) for k, v in enc.items()}


def assert_hidden_parity(ours, theirs, mask):
    real = mask.astype(bool)  # padded positions hold values nobody reads; compare real tokens
    diff = np.abs(ours[real] - theirs[real]).max()
    assert diff < 1e-4, f"max abs difference {diff}"


def test_minilm_last_hidden_state_and_pooler_match_transformers(minilm_path, sentences):
    enc = batch(minilm_path, sentences)
    model = AutoModel.from_pretrained(minilm_path)
    assert model.loading_info == {"missing_keys": [], "unexpected_keys": []}
    with minitransfer.no_grad():
        out = model(**enc)
    ref = transformers.AutoModel.from_pretrained(minilm_path).eval()
    with torch.no_grad():
        expected = ref(**torch_inputs(enc))
    assert_hidden_parity(out.last_hidden_state.numpy(), expected.last_hidden_state.numpy(), enc["attention_mask"])
    assert np.abs(out.pooler_output.numpy() - expected.pooler_output.numpy()).max() < 1e-4


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("kind", ["bert", "bert-mlm", "distilbert", "distilbert-mlm"])
def test_random_checkpoints_match_transformers(checkpoints, minilm_path, sentences, kind, fmt):
    path, ref = checkpoints[kind, fmt]
    distil = kind.startswith("distilbert")
    enc = batch(minilm_path, sentences, distil)
    auto = AutoModelForMaskedLM if kind.endswith("mlm") else AutoModel
    model = auto.from_pretrained(path)
    assert model.loading_info["missing_keys"] == []
    with minitransfer.no_grad():
        out = model(**enc)
    with torch.no_grad():
        expected = ref(**torch_inputs(enc))
    if kind.endswith("mlm"):
        assert_hidden_parity(out.logits.numpy(), expected.logits.numpy(), enc["attention_mask"])
    else:
        assert_hidden_parity(out.last_hidden_state.numpy(), expected.last_hidden_state.numpy(), enc["attention_mask"])


def relative_error(a, b, floor):
    """|a - b| / |b| by norm; `floor` stands in for |b| where the true gradient is zero.

    The key bias's gradient is exactly 0 in exact arithmetic (softmax ignores a constant added to every
    score of a row), so both frameworks return float32 rounding noise there (~1e-5 against gradients of
    ~1e3): it is measured against 1e-3 of the model's largest gradient norm instead of its own.
    """
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), floor)


def assert_gradients_match(model, ref_params):
    ref_grads = {n: p.grad.numpy() for n, p in ref_params.items()}
    floor = 1e-3 * max(np.linalg.norm(g) for g in ref_grads.values())
    for name, p in model.named_parameters():
        err = relative_error(p.grad.numpy(), ref_grads[name], floor)
        assert err < 1e-4, f"{name}: relative gradient error {err}"


def compare_gradients(model, ref, enc, labels):
    """Run the same MLM loss through both and compare every parameter's gradient (relative, by norm)."""
    out = model(**enc, labels=labels)
    out.loss.backward()
    ref.train()
    ref_out = ref(**torch_inputs(enc), labels=torch.tensor(labels))
    ref_out.loss.backward()
    assert abs(out.loss.item() - ref_out.loss.item()) < 1e-4
    ref_grads = dict(ref.named_parameters())
    names = [n for n, _ in model.named_parameters()]
    assert names == list(ref_grads), "parameter names must equal transformers' own"
    assert_gradients_match(model, ref_grads)


@pytest.mark.parametrize("kind", ["bert-mlm", "distilbert-mlm"])
def test_gradients_match_transformers(checkpoints, minilm_path, sentences, kind):
    path, _ = checkpoints[kind, "safetensors"]
    model_type = kind.split("-")[0]
    ref = getattr(transformers, "BertForMaskedLM" if model_type == "bert" else "DistilBertForMaskedLM").from_pretrained(
        path, **NO_DROPOUT[model_type])
    model = AutoModelForMaskedLM.from_pretrained(path, **NO_DROPOUT[model_type]).train()
    enc = batch(minilm_path, sentences, distil=model_type == "distilbert")
    labels = np.where(np.random.default_rng(0).random(enc["input_ids"].shape) < 0.3, enc["input_ids"], -100)
    labels[enc["attention_mask"] == 0] = -100
    compare_gradients(model, ref, enc, labels)


def test_minilm_gradients_match_transformers(minilm_path, sentences):
    """The real checkpoint, full backward through all six layers (loss: a fixed projection of the output)."""
    enc = batch(minilm_path, sentences)
    model = AutoModel.from_pretrained(minilm_path, **NO_DROPOUT["bert"]).train()
    ref = transformers.AutoModel.from_pretrained(minilm_path, **NO_DROPOUT["bert"]).train()
    w = np.random.default_rng(1).standard_normal((1, 1, 384)).astype(np.float32)
    mask = enc["attention_mask"][..., None].astype(np.float32)
    out = model(**enc)
    ((out.last_hidden_state * (w * mask)).sum() + out.pooler_output.sum()).backward()
    ref_out = ref(**torch_inputs(enc))
    ((ref_out.last_hidden_state * torch.tensor(w * mask)).sum() + ref_out.pooler_output.sum()).backward()
    assert_gradients_match(model, dict(ref.named_parameters()))


def test_named_parameters_use_hugging_face_names(checkpoints):
    bert = BertForMaskedLM.from_pretrained(checkpoints["bert-mlm", "safetensors"][0])
    names = [n for n, _ in bert.named_parameters()]
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert "cls.predictions.decoder.weight" not in names  # tied to the word embeddings: one parameter
    assert bert.cls.predictions.decoder.weight is bert.bert.embeddings.word_embeddings.weight
    distil = DistilBertModel.from_pretrained(checkpoints["distilbert", "bin"][0])
    assert "transformer.layer.0.attention.q_lin.weight" in [n for n, _ in distil.named_parameters()]
