"""Task heads: parity with transformers' heads on the same weights, head swap reports, freezing."""
import numpy as np
import pytest

import minitransfer
from minitransfer.models import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertForSequenceClassification,
    DistilBertForQuestionAnswering,
    apply_freezing,
)
from tests.models.test_parity import NO_DROPOUT, assert_gradients_match, batch, torch_inputs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HEADS = {
    "seq": ("ForSequenceClassification", AutoModelForSequenceClassification),
    "tok": ("ForTokenClassification", AutoModelForTokenClassification),
    "qa": ("ForQuestionAnswering", AutoModelForQuestionAnswering),
}


def labels_for(head, enc):
    rng = np.random.default_rng(0)
    batch_size, seq = enc["input_ids"].shape
    if head == "seq":
        return {"labels": rng.integers(0, 3, batch_size)}
    if head == "tok":
        labels = rng.integers(0, 3, (batch_size, seq))
        labels[enc["attention_mask"] == 0] = -100
        return {"labels": labels}
    return {"start_positions": rng.integers(0, seq, batch_size), "end_positions": rng.integers(0, seq + 5, batch_size)}


def qa_loss_over_real_tokens(ref_out, targets, mask):
    """transformers' QA loss with pad positions masked out of the start/end softmax: what the packed path
    computes (its softmax runs over real tokens only)."""
    pad = torch.tensor(mask == 0)
    seq = mask.shape[1]
    losses = []
    for name, positions in (("start", targets["start_positions"]), ("end", targets["end_positions"])):
        logits = ref_out[f"{name}_logits"].masked_fill(pad, torch.finfo(torch.float32).min)
        target = torch.tensor(positions).clamp(0, seq)
        on_padding = torch.tensor(mask)[torch.arange(len(target)), target.clamp(max=seq - 1)] == 0
        target[on_padding] = seq  # a position on padding: probability 0 in the packed softmax, so no loss
        losses.append(torch.nn.functional.cross_entropy(logits, target, ignore_index=seq))
    return (losses[0] + losses[1]) / 2


@pytest.mark.parametrize("padding_free", [True, False])
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_head_matches_transformers_logits_loss_and_gradients(checkpoints, minilm_path, sentences, tmp_path, head,
                                                             model_type, padding_free):
    """Padded path: transformers' numbers everywhere. Packed path: the same on real tokens, and the same loss
    and gradients (for QA: against transformers' loss with pad positions masked)."""
    body_path, _ = checkpoints[model_type, "safetensors"]
    suffix, auto = HEADS[head]
    hf_cls = getattr(transformers, ("Bert" if model_type == "bert" else "DistilBert") + suffix)
    torch.manual_seed(0)
    ref = hf_cls.from_pretrained(body_path, num_labels=2 if head == "qa" else 3, **NO_DROPOUT[model_type])
    ref.save_pretrained(tmp_path)  # the head's random weights travel through a checkpoint to ours
    model = auto.from_pretrained(tmp_path, padding_free=padding_free, **NO_DROPOUT[model_type]).train()
    assert model.loading_info["missing_keys"] == []
    enc = batch(minilm_path, sentences, distil=model_type == "distilbert")
    targets = labels_for(head, enc)
    out = model(**enc, **targets)
    ref.train()
    ref_out = ref(**torch_inputs(enc), **{k: torch.tensor(v) for k, v in targets.items()})
    real = enc["attention_mask"].astype(bool)
    for key in ("logits",) if head != "qa" else ("start_logits", "end_logits"):
        ours, theirs = out[key].numpy(), ref_out[key].detach().numpy()
        if head != "seq" and padding_free:
            ours, theirs = ours[real], theirs[real]
        assert np.abs(ours - theirs).max() < 1e-4, key
    ref_loss = ref_out.loss
    if head == "qa":
        masked_loss = qa_loss_over_real_tokens(ref_out, targets, enc["attention_mask"])
        # The masked loss must differ from transformers' own, or the packed comparison would test nothing.
        assert abs(masked_loss.item() - ref_out.loss.item()) > 1e-4
        ref_loss = masked_loss if padding_free else ref_out.loss
    assert abs(out.loss.item() - ref_loss.item()) < 1e-5
    out.loss.backward()
    ref_loss.backward()
    assert_gradients_match(model, dict(ref.named_parameters()))


@pytest.mark.parametrize("padding_free", [True, False])
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_masked_lm_loss_and_gradients_match_transformers(checkpoints, minilm_path, sentences, model_type,
                                                         padding_free):
    """The MLM loss (computed from the labelled rows only) equals transformers' cross-entropy over all logits with
    ignore_index -100, and so do every gradient and the full logits it still returns."""
    path, _ = checkpoints[f"{model_type}-mlm", "safetensors"]
    model = minitransfer.AutoModelForMaskedLM.from_pretrained(path, padding_free=padding_free,
                                                              **NO_DROPOUT[model_type]).train()
    ref = getattr(transformers, ("Bert" if model_type == "bert" else "DistilBert") + "ForMaskedLM").from_pretrained(
        path, **NO_DROPOUT[model_type]).train()
    enc = batch(minilm_path, sentences, distil=model_type == "distilbert")
    labels = np.full(enc["input_ids"].shape, -100)
    chosen = (np.random.default_rng(0).random(labels.shape) < 0.3) & (enc["attention_mask"] == 1)
    labels[chosen] = enc["input_ids"][chosen] % ref.config.vocab_size
    out = model(**enc, labels=labels)
    ref_out = ref(**torch_inputs(enc), labels=torch.tensor(labels))
    real = enc["attention_mask"].astype(bool)
    assert np.abs(out.logits.numpy()[real] - ref_out.logits.detach().numpy()[real]).max() < 1e-4
    assert abs(out.loss.item() - ref_out.loss.item()) < 1e-5
    out.loss.backward()
    ref_out.loss.backward()
    assert_gradients_match(model, dict(ref.named_parameters()))


def test_loading_a_body_reports_new_head_and_dropped_pretraining_head(checkpoints):
    path, _ = checkpoints["bert-mlm", "safetensors"]
    model = BertForSequenceClassification.from_pretrained(path, num_labels=2)
    info = model.loading_info
    assert set(info["missing_keys"]) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
                                         "classifier.bias"}
    assert "cls.predictions.transform.dense.weight" in info["unexpected_keys"]
    std = model.classifier.weight.numpy().std()
    assert 0.01 < std < 0.03, "new head initialized with std = initializer_range (0.02)"
    np.testing.assert_array_equal(model.classifier.bias.numpy(), 0)


def test_replace_head_and_from_body(checkpoints, minilm_path, sentences):
    path, _ = checkpoints["distilbert", "safetensors"]
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    body_before = model.distilbert.transformer.layer[0].ffn.lin1.weight.numpy().copy()
    model.replace_head(num_labels=5)
    assert model.classifier.weight.shape == (5, 32) and model.config.num_labels == 5
    np.testing.assert_array_equal(model.distilbert.transformer.layer[0].ffn.lin1.weight.numpy(), body_before)
    qa = DistilBertForQuestionAnswering.from_body(model)
    np.testing.assert_array_equal(qa.distilbert.transformer.layer[0].ffn.lin1.weight.numpy(), body_before)
    enc = batch(minilm_path, sentences, distil=True)
    with minitransfer.no_grad():
        assert qa(**enc).start_logits.shape == enc["input_ids"].shape


@pytest.mark.parametrize("recipe,expected_trainable_layers", [
    (dict(), 2), (dict(freeze_embeddings=True), 2), (dict(freeze_layers=1), 1), (dict(head_only=True), 0)])
def test_freezing_recipes_leave_frozen_parameters_without_gradients(checkpoints, minilm_path, sentences, recipe,
                                                                    expected_trainable_layers):
    path, _ = checkpoints["bert", "safetensors"]
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()
    frozen = set(apply_freezing(model, **recipe))
    enc = batch(minilm_path, sentences)
    model(**enc, labels=np.zeros(len(sentences), dtype=np.int64)).loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == (name in frozen), name
    trainable_layers = {n.split(".")[3] for n, p in model.named_parameters() if p.requires_grad and ".layer." in n}
    assert len(trainable_layers) == expected_trainable_layers
    embeddings_frozen = "bert.embeddings.word_embeddings.weight" in frozen
    assert embeddings_frozen == any(recipe.values())
    assert "classifier.weight" not in frozen


def test_frozen_lower_layers_build_no_graph_below_the_first_trainable_layer(checkpoints, minilm_path, sentences):
    path, _ = checkpoints["bert", "safetensors"]
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()
    apply_freezing(model, freeze_layers=1)
    enc = batch(minilm_path, sentences)
    hidden = model.bert.embeddings(enc["input_ids"], enc["token_type_ids"])
    first = model.bert.encoder.layer[0](hidden, enc["attention_mask"])
    assert first.creator is None, "a frozen layer over frozen inputs must not record a graph"
