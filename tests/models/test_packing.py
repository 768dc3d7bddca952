"""The padding-free path (nn/packing.py) against the padded one on the same weights and batch.

Both paths compute the same function of the real tokens, in float32 with other GEMM shapes (T rows instead of
B x S), so outputs agree to ~1e-6 and gradients to ~1e-5 relative (1e-4 for the smallest); 1e-5 and 1e-3 leave
room for nothing else.
"""
import numpy as np
import pytest

import minitransfer
from minitransfer import DataCollatorWithFlattening, InputError
from minitransfer.models import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from minitransfer.tokenization import AutoTokenizer
from tests.models.test_parity import NO_DROPOUT, batch, relative_error

HEADS = {"body": AutoModel, "seq": AutoModelForSequenceClassification, "tok": AutoModelForTokenClassification,
         "qa": AutoModelForQuestionAnswering, "mlm": AutoModelForMaskedLM}


def kind_of(model_type, head):
    return model_type + ("-mlm" if head == "mlm" else "")


def targets_for(head, enc):
    rng = np.random.default_rng(0)
    n, seq = enc["input_ids"].shape
    lengths = enc["attention_mask"].sum(1)
    if head == "seq":
        return {"labels": rng.integers(0, 2, n)}
    if head in ("tok", "mlm"):
        labels = rng.integers(0, 2 if head == "tok" else 1000, (n, seq))
        labels[enc["attention_mask"] == 0] = -100
        return {"labels": labels}
    if head == "qa":  # on real tokens: there the two softmaxes differ only by the pad terms
        return {"start_positions": rng.integers(0, lengths), "end_positions": rng.integers(0, lengths)}
    return {}


def loss_of(head, out, enc):
    if head == "body":
        w = np.random.default_rng(1).standard_normal(out.last_hidden_state.shape[-1]).astype(np.float32)
        real = enc["attention_mask"][..., None].astype(np.float32)
        return (out.last_hidden_state * (w * real)).sum() + out.pooler_output.sum() if "pooler_output" in out else (
            out.last_hidden_state * (w * real)).sum()
    return out.loss


def run(path, head, enc, padding_free, model_type):
    minitransfer.manual_seed(0)  # the same new head on both paths
    model = HEADS[head].from_pretrained(path, padding_free=padding_free, **NO_DROPOUT[model_type]).train()
    extra = {"output_hidden_states": True} if head == "body" else {}
    out = model(**enc, **targets_for(head, enc), **extra)
    if head != "qa":  # QA's losses differ by design (softmax over real tokens only): gradients compared elsewhere
        loss_of(head, out, enc).backward()
    return model, out


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_packed_equals_padded_on_real_tokens_with_equal_gradients(checkpoints, minilm_path, sentences, head,
                                                                  model_type):
    path, _ = checkpoints[kind_of(model_type, head), "safetensors"]
    enc = batch(minilm_path, sentences, distil=model_type == "distilbert")
    packed_model, packed = run(path, head, enc, True, model_type)
    padded_model, padded = run(path, head, enc, False, model_type)
    real = enc["attention_mask"].astype(bool)
    for key in padded:
        if key == "loss":
            assert abs(packed.loss.item() - padded.loss.item()) < 1e-5 or head == "qa"
            continue
        if key == "hidden_states":  # every block's input and output
            assert len(packed[key]) == len(padded[key])
            for a, b in zip(packed[key], padded[key]):
                assert np.abs(a.numpy()[real] - b.numpy()[real]).max() < 1e-5
            continue
        ours, theirs = packed[key].numpy(), padded[key].numpy()
        assert ours.shape == theirs.shape, key
        if key not in ("pooler_output",) and not (head == "seq"):
            ours, theirs = ours[real], theirs[real]
        assert np.abs(ours - theirs).max() < 1e-5, key
    if head == "qa":
        return
    grads = {n: p.grad.numpy() for n, p in padded_model.named_parameters() if p.grad is not None}
    # Small gradients (DistilBERT's embedding LayerNorm bias under a classifier loss, ~1e-7) carry float32 noise of
    # ~1e-4 of their size from the other GEMM shapes; a wrong term would be off by O(1). Hence 1e-3.
    floor = 1e-3 * max(np.linalg.norm(g) for g in grads.values())
    for name, p in packed_model.named_parameters():
        assert (p.grad is None) == (name not in grads), name
        if p.grad is not None:
            assert relative_error(p.grad.numpy(), grads[name], floor) < 1e-3, name


def test_packed_output_is_zero_at_padding_and_qa_logits_lowest_there(checkpoints, minilm_path, sentences):
    enc = batch(minilm_path, sentences)
    pad = enc["attention_mask"] == 0
    with minitransfer.no_grad():
        hidden = AutoModel.from_pretrained(checkpoints["bert", "safetensors"][0])(**enc).last_hidden_state.numpy()
        qa = AutoModelForQuestionAnswering.from_pretrained(checkpoints["bert", "safetensors"][0])(**enc)
    assert np.all(hidden[pad] == 0) and np.all(hidden[~pad] != 0)
    assert np.all(qa.start_logits.numpy()[pad] == np.finfo(np.float32).min)
    probs = np.exp(qa.start_logits.numpy() - qa.start_logits.numpy().max(-1, keepdims=True))
    assert np.all(probs[pad] == 0), "the start softmax runs over real tokens only"


def test_left_padding_and_holes_get_the_padded_positions(checkpoints, minilm_path, sentences):
    """A token's position is its column, as in the padded computation, wherever the padding sits."""
    enc = batch(minilm_path, sentences)
    n, seq = enc["input_ids"].shape
    lengths = enc["attention_mask"].sum(1)
    shifted = {k: np.zeros_like(v) for k, v in enc.items()}
    for i, length in enumerate(lengths):  # the same real tokens moved to the right end (left padding)
        for k, v in enc.items():
            shifted[k][i, seq - length:] = v[i, :length]
    shifted["attention_mask"][1, seq - 2] = 0  # and a hole inside row 1
    path = checkpoints["bert", "safetensors"][0]
    with minitransfer.no_grad():
        ours = AutoModel.from_pretrained(path)(**shifted).last_hidden_state.numpy()
        theirs = AutoModel.from_pretrained(path, padding_free=False)(**shifted).last_hidden_state.numpy()
    real = shifted["attention_mask"].astype(bool)
    assert np.abs(ours[real] - theirs[real]).max() < 1e-5


@pytest.mark.parametrize("bounds", ["position_ids", "cu_seq_lens"])
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_flattened_batch_equals_padded_batch(checkpoints, minilm_path, sentences, model_type, bounds):
    """DataCollatorWithFlattening's (1, T) batch gives each sequence the outputs it gets in a padded batch."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    enc = batch(minilm_path, sentences, distil=model_type == "distilbert")
    features = [{k: v[i, :m] for k, v in enc.items()} | {"label": i % 2}
                for i, m in enumerate(enc["attention_mask"].sum(1))]
    flat = DataCollatorWithFlattening(return_flash_attn_kwargs=bounds == "cu_seq_lens")(features)
    assert flat["input_ids"].shape == (1, enc["attention_mask"].sum()) and tokenizer is not None
    if bounds == "cu_seq_lens":
        flat.pop("position_ids")
    else:
        assert set(flat) == {"input_ids", "position_ids", "labels"} | ({"token_type_ids"} if "token_type_ids" in enc
                                                                        else set())
    path = checkpoints[model_type, "safetensors"][0]
    labels = flat.pop("labels")
    np.testing.assert_array_equal(labels, np.arange(len(sentences)) % 2)
    with minitransfer.no_grad():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
        ours = model(**flat).logits.numpy()
        theirs = model(**enc).logits.numpy()
        hidden = AutoModel.from_pretrained(path)(**flat).last_hidden_state.numpy()[0]
        padded = AutoModel.from_pretrained(path, padding_free=False)(**enc).last_hidden_state.numpy()
    assert ours.shape == (len(sentences), 2), "one row of logits per flattened sequence"
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.abs(hidden - padded[enc["attention_mask"].astype(bool)]).max() < 1e-5


def test_mlm_logits_at_masked_positions_equal_the_full_logits(checkpoints, minilm_path, sentences):
    enc = batch(minilm_path, sentences)
    model = AutoModelForMaskedLM.from_pretrained(checkpoints["bert-mlm", "safetensors"][0])
    rows, cols = np.nonzero(enc["attention_mask"])
    picked = np.random.default_rng(0).permutation(len(rows))[:7]
    with minitransfer.no_grad():
        full = model(**enc).logits.numpy()
        at = model.logits_at(enc, rows[picked], cols[picked]).numpy()
    assert np.abs(at - full[rows[picked], cols[picked]]).max() < 1e-5


def test_dropout_agrees_statistically(minilm_path, sentences):
    """With dropout the two paths draw different masks; the mean over many draws estimates the same output."""
    enc = batch(minilm_path, sentences)
    means = {}
    for padding_free in (True, False):
        model = AutoModel.from_pretrained(minilm_path, padding_free=padding_free).train()
        minitransfer.manual_seed(0)
        with minitransfer.no_grad():
            draws = np.stack([model(**enc).pooler_output.numpy() for _ in range(24)])
        means[padding_free] = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
        assert draws.std(0).mean() > 1e-3, "dropout must be active in train mode"
    (a, sa), (b, sb) = means[True], means[False]
    z = np.abs(a - b) / np.sqrt(sa**2 + sb**2 + 1e-12)
    assert np.median(z) < 1.5 and np.mean(z > 4) < 0.01


def test_bad_masks_and_bounds_get_one_clear_error(checkpoints, minilm_path, sentences):
    model = AutoModel.from_pretrained(checkpoints["bert", "safetensors"][0])
    enc = batch(minilm_path, sentences)
    bad = dict(enc, attention_mask=enc["attention_mask"] * 2)
    with pytest.raises(InputError, match="only 0 .* and 1"):
        model(**bad)
    empty = dict(enc, attention_mask=enc["attention_mask"].copy())
    empty["attention_mask"][2] = 0
    with pytest.raises(InputError, match="row 2 .* no real token"):
        model(**empty)
    ids = enc["input_ids"][:1, :5]
    with pytest.raises(InputError, match="end at the 5 tokens"):
        model(input_ids=ids, cu_seq_lens_q=np.array([0, 2, 4]))
    with pytest.raises(InputError, match="shape \\(1, tokens\\)"):
        model(input_ids=enc["input_ids"], cu_seq_lens_q=np.array([0, 2, 4]))
    with pytest.raises(TypeError, match="unexpected keyword"):
        model(**enc, head_mask=None)


@pytest.mark.parametrize("padding_free", [True, False])
@pytest.mark.parametrize("head", ["body", "seq", "tok", "qa", "mlm"])
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_output_attentions_and_hidden_states_through_every_head_match_transformers(
        checkpoints, minilm_path, sentences, tmp_path, head, model_type, padding_free):
    """Probabilities between real tokens equal transformers' (eager attention); computed only when asked."""
    import torch
    import transformers

    path, _ = checkpoints[kind_of(model_type, head), "safetensors"]
    prefix = "Bert" if model_type == "bert" else "DistilBert"
    suffix = {"body": "Model", "seq": "ForSequenceClassification", "tok": "ForTokenClassification",
              "qa": "ForQuestionAnswering", "mlm": "ForMaskedLM"}[head]
    torch.manual_seed(0)
    ref = getattr(transformers, prefix + suffix).from_pretrained(path, attn_implementation="eager").eval()
    ref.save_pretrained(tmp_path)
    model = HEADS[head].from_pretrained(tmp_path, padding_free=padding_free)
    enc = batch(minilm_path, sentences, distil=model_type == "distilbert")
    with minitransfer.no_grad():
        assert model(**enc).attentions is None and model(**enc).hidden_states is None
        out = model(**enc, output_attentions=True, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(**{k: torch.tensor(v) for k, v in enc.items()}, output_attentions=True,
                       output_hidden_states=True)
    real = enc["attention_mask"].astype(bool)
    pair = real[:, None, :, None] & real[:, None, None, :]  # (B, 1, S, S): query and key both real
    assert len(out.attentions) == len(expected.attentions) == len(out.hidden_states) - 1
    for ours, theirs in zip(out.attentions, expected.attentions):
        ours, theirs = ours.numpy(), theirs.numpy()
        assert ours.shape == theirs.shape
        assert np.abs((ours - theirs)[np.broadcast_to(pair, ours.shape)]).max() < 1e-5
        assert np.all(ours[np.broadcast_to(~real[:, None, None, :], ours.shape)] == 0), "padded keys get 0"
    for ours, theirs in zip(out.hidden_states, expected.hidden_states):
        assert np.abs(ours.numpy()[real] - theirs.numpy()[real]).max() < 1e-4
