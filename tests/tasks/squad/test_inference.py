"""answer() and run_model() with a fake model whose logits peak on a known span."""
import numpy as np
import pytest

from minitransfer.autograd import Tensor
from minitransfer.errors import InputError
from minitransfer.models.outputs import ModelOutput
from minitransfer.tasks.squad import SquadExample, answer, prepare_eval_features, run_model

FILLER = "The committee met again on Tuesday and discussed the budget for the coming year at length. "
CONTEXT = FILLER * 12 + "The treasure was hidden by Captain Ahab Morgan in 1742. " + FILLER * 6
QUESTION = "Who hid the treasure?"


class PeakModel:
    """Start logit 8 on `start_id`, end logit 8 on `end_id`, a small token-dependent ripple elsewhere.

    Logits depend only on each token's id, so cutting padding off a batch must not change them.
    Records the shape of each batch it sees.
    """

    def __init__(self, start_id, end_id):
        self.start_id, self.end_id = start_id, end_id
        self.shapes = []

    def logits(self, input_ids):
        ripple = 0.01 * (input_ids % 97)
        return ripple + 8.0 * (input_ids == self.start_id), ripple + 8.0 * (input_ids == self.end_id)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        assert input_ids.shape == attention_mask.shape == token_type_ids.shape
        self.shapes.append(input_ids.shape)
        start, end = self.logits(input_ids)
        return ModelOutput(start_logits=Tensor(start.astype(np.float32)), end_logits=end.astype(np.float32))


@pytest.fixture(scope="module")
def model(tokenizer):
    (captain,), (morgan,) = (tokenizer.encode(w, add_special_tokens=False) for w in ("captain", "morgan"))
    return PeakModel(captain, morgan)


def test_answer_in_a_late_window(tokenizer, model):
    example = SquadExample(id="0", title="", context=CONTEXT, question=QUESTION)
    assert len(prepare_eval_features([example], tokenizer, 64, 16)) > 5  # the context really needs many windows
    result = answer(QUESTION, CONTEXT, model, tokenizer, max_length=64, doc_stride=16)
    assert result["answer"] == "Captain Ahab Morgan"
    assert CONTEXT[result["start"]:result["end"]] == result["answer"]
    assert result["score"] > 16 and 0 < result["probability"] <= 1
    # The same answer at the default lengths, and batch by batch.
    assert answer(QUESTION, CONTEXT, model, tokenizer)["answer"] == result["answer"]
    assert answer(QUESTION, CONTEXT, model, tokenizer, 64, 16, batch_size=1) == result


def test_run_model_cuts_batches_to_their_longest_window(tokenizer, model, sample_examples):
    feats = prepare_eval_features(sample_examples[:40], tokenizer, max_length=384, doc_stride=128)
    lengths = feats.attention_mask.sum(axis=1)
    model.shapes.clear()
    start, end = run_model(model, feats, batch_size=8)
    widths = [int(lengths[b:b + 8].max()) for b in range(0, len(feats), 8)]
    assert model.shapes == [(len(lengths[b:b + 8]), w) for b, w in zip(range(0, len(feats), 8), widths)]
    assert max(widths) < 384  # the cut saved work on this slice
    assert start.shape == end.shape == feats.input_ids.shape and start.dtype == np.float32
    full_start, full_end = model.logits(feats.input_ids)
    for w, length in enumerate(lengths):
        np.testing.assert_allclose(start[w, :length], full_start[w, :length], rtol=1e-6)
        np.testing.assert_allclose(end[w, :length], full_end[w, :length], rtol=1e-6)
        assert np.isneginf(start[w, widths[w // 8]:]).all()


def test_answer_bad_input(tokenizer, model):
    with pytest.raises(InputError, match="question is empty"):
        answer("  ", CONTEXT, model, tokenizer)
    with pytest.raises(InputError, match="context is empty"):
        answer("Who?", "", model, tokenizer)
    with pytest.raises(InputError, match="raise max_length"):
        answer("why " * 100, CONTEXT, model, tokenizer, max_length=64, doc_stride=16)

    def wrong_shape(input_ids, attention_mask, token_type_ids):
        return ModelOutput(start_logits=np.zeros((1, 3)), end_logits=np.zeros((1, 3)))

    with pytest.raises(InputError, match="start_logits have shape"):
        answer("Who hid it?", CONTEXT, wrong_shape, tokenizer)


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_real_qa_model_and_batch_cut(tokenizer, sample_examples, model_type):
    """A tiny random QA model: cutting padding off a batch leaves the logits of real tokens unchanged."""
    from minitransfer.autograd import no_grad
    from minitransfer.models import BertForQuestionAnswering, DistilBertForQuestionAnswering, ModelConfig

    if model_type == "bert":
        config = ModelConfig("bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, max_position_embeddings=128)
        qa = BertForQuestionAnswering(config)
    else:
        config = ModelConfig("distilbert", dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=128)
        qa = DistilBertForQuestionAnswering(config)
    qa.eval()
    feats = prepare_eval_features(sample_examples[:6], tokenizer, max_length=128, doc_stride=32)
    start, end = run_model(qa, feats, batch_size=4)
    with no_grad():
        full = qa(**feats.model_inputs())
    mask = feats.attention_mask.astype(bool)
    np.testing.assert_allclose(start[mask], full.start_logits.data[mask], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(end[mask], full.end_logits.data[mask], rtol=1e-4, atol=1e-5)
    result = answer(QUESTION, CONTEXT, qa, tokenizer, max_length=128, doc_stride=32)
    assert CONTEXT[result["start"]:result["end"]] == result["answer"] != ""
