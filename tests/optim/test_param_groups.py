"""Weight-decay groups on a real model: decay on matrices and embeddings, none on biases and LayerNorm."""
from minitransfer.models import BertModel, DistilBertModel, ModelConfig, apply_freezing
from minitransfer.optim import AdamW, decay_parameter_names, param_groups_for_weight_decay

BERT = ModelConfig("bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                   vocab_size=100, max_position_embeddings=64)


def test_bert_decay_names():
    model = BertModel(BERT)
    decay = set(decay_parameter_names(model))
    names = [n for n, _ in model.named_parameters()]
    expected = {n for n in names if n.endswith(".weight") and "LayerNorm" not in n}
    assert decay == expected
    assert "embeddings.word_embeddings.weight" in decay
    assert "encoder.layer.1.attention.self.query.weight" in decay
    assert "pooler.dense.weight" in decay
    assert "embeddings.LayerNorm.weight" not in decay
    assert "encoder.layer.0.output.LayerNorm.weight" not in decay
    assert "encoder.layer.0.intermediate.dense.bias" not in decay


def test_groups_cover_trainable_parameters_once_with_the_right_decay():
    model = BertModel(BERT)
    assert apply_freezing(model, freeze_embeddings=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert 0 < len(trainable) < len(list(model.parameters())), "freezing the embeddings must leave fewer"
    decay, no_decay = param_groups_for_weight_decay(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert sorted(map(id, decay["params"] + no_decay["params"])) == sorted(map(id, trainable))
    assert all(p.ndim == 1 for p in no_decay["params"]) and all(p.ndim == 2 for p in decay["params"])
    assert "embeddings.word_embeddings.weight" not in decay_parameter_names(model)
    optimizer = AdamW(param_groups_for_weight_decay(model, 0.01), lr=1e-4)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]


def test_distilbert_layer_norm_names_get_no_decay():
    model = DistilBertModel(ModelConfig("distilbert", dim=32, n_layers=1, n_heads=4, hidden_dim=64, vocab_size=100,
                                        max_position_embeddings=64))
    decay = decay_parameter_names(model)
    assert not any("layer_norm" in n or "LayerNorm" in n or "bias" in n for n in decay)
    assert "transformer.layer.0.ffn.lin1.weight" in decay
    names = [n for n, _ in model.named_parameters()]
    assert "transformer.layer.0.sa_layer_norm.weight" in names
