"""bert-to-distilbert: exact with every layer kept; loadable by transformers; MLM head carried over."""
import numpy as np
import pytest

import minitransfer
from minitransfer.cli import main
from minitransfer.models import BertForMaskedLM, BertModel, DistilBertModel
from minitransfer.models.convert import bert_to_distilbert
from tests.models.test_parity import batch, torch_inputs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_student_with_every_layer_equals_the_teacher_on_single_sentences(minilm_path, sentences):
    teacher = BertModel.from_pretrained(minilm_path)
    student = bert_to_distilbert(teacher, layers=range(6))
    enc = batch(minilm_path, sentences)
    with minitransfer.no_grad():
        expected = teacher(**enc).last_hidden_state.numpy()
        got = student(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state.numpy()
    real = enc["attention_mask"].astype(bool)
    assert np.abs(got[real] - expected[real]).max() < 1e-4


def test_cli_conversion_takes_every_other_layer_and_loads_in_transformers(minilm_path, sentences, tmp_path):
    assert main(["convert", "bert-to-distilbert", str(minilm_path), str(tmp_path)]) == 0
    ours = DistilBertModel.from_pretrained(tmp_path)
    assert ours.config.n_layers == 3
    teacher = BertModel.from_pretrained(minilm_path)
    np.testing.assert_array_equal(ours.transformer.layer[1].attention.q_lin.weight.numpy(),
                                  teacher.encoder.layer[2].attention.self.query.weight.numpy())
    ref = transformers.DistilBertModel.from_pretrained(tmp_path).eval()
    enc = batch(minilm_path, sentences, distil=True)
    with minitransfer.no_grad():
        got = ours(**enc).last_hidden_state.numpy()
    with torch.no_grad():
        expected = ref(**torch_inputs(enc)).last_hidden_state.numpy()
    real = enc["attention_mask"].astype(bool)
    assert np.abs(got[real] - expected[real]).max() < 1e-4


def test_mlm_head_is_carried_over(checkpoints, minilm_path):
    teacher = BertForMaskedLM.from_pretrained(checkpoints["bert-mlm", "safetensors"][0])
    student = bert_to_distilbert(teacher, layers=[0, 1])
    enc = batch(minilm_path, ["the movie was [MASK] .", "a [MASK] film"])
    with minitransfer.no_grad():
        expected = teacher(**enc).logits.numpy()
        got = student(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert student.vocab_projector.weight is student.distilbert.embeddings.word_embeddings.weight


def test_converting_a_distilbert_checkpoint_is_a_clear_error(checkpoints, tmp_path, capsys):
    assert main(["convert", "bert-to-distilbert", str(checkpoints["distilbert", "bin"][0]), str(tmp_path)]) == 2
    assert "needs a BERT one" in capsys.readouterr().err
