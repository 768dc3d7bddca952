"""BERT → DistilBERT: a student initialized from its teacher, as the DistilBERT paper did.

The student keeps the teacher's width and takes its embeddings and every other encoder layer (0, 2, 4, ...).
DistilBERT has no token types; BERT adds token-type embedding 0 to every token of a single sentence, so
that vector is folded into the position embeddings: on single-sentence inputs the student's embedding
output equals the teacher's exactly. With every layer kept, the whole student equals the teacher.
"""
from __future__ import annotations

from minitransfer.models.bert import BertForMaskedLM, BertModel
from minitransfer.models.config import ModelConfig
from minitransfer.models.distilbert import DistilBertForMaskedLM, DistilBertModel

# teacher layer name → student layer name, within one encoder layer
LAYER_MAP = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}
MLM_HEAD_MAP = {
    "cls.predictions.transform.dense": "vocab_transform",
    "cls.predictions.transform.LayerNorm": "vocab_layer_norm",
}


def distilbert_config(bert: ModelConfig, num_layers: int) -> ModelConfig:
    return ModelConfig(
        "distilbert", vocab_size=bert.vocab_size, dim=bert.hidden_size, n_layers=num_layers,
        n_heads=bert.num_attention_heads, hidden_dim=bert.intermediate_size, activation=bert.hidden_act,
        dropout=bert.hidden_dropout_prob, attention_dropout=bert.attention_probs_dropout_prob,
        max_position_embeddings=bert.max_position_embeddings, initializer_range=bert.initializer_range,
        pad_token_id=bert.pad_token_id)


def bert_to_distilbert(teacher: BertModel | BertForMaskedLM, layers: list[int] | None = None):
    """A DistilBertModel (or DistilBertForMaskedLM, from a BertForMaskedLM) initialized from `teacher`.

    layers: teacher layer indices to keep (default every other layer: 0, 2, 4, ...).
    """
    with_head = isinstance(teacher, BertForMaskedLM)
    bert = teacher.bert if with_head else teacher
    layers = list(range(0, bert.config.num_hidden_layers, 2)) if layers is None else list(layers)
    config = distilbert_config(bert.config, len(layers))
    student = DistilBertForMaskedLM(config) if with_head else DistilBertModel(config)
    prefix = "distilbert." if with_head else ""
    source = bert.state_dict()
    state = {
        f"{prefix}embeddings.word_embeddings.weight": source["embeddings.word_embeddings.weight"],
        f"{prefix}embeddings.position_embeddings.weight": source["embeddings.position_embeddings.weight"]
        + source["embeddings.token_type_embeddings.weight"][0],
        f"{prefix}embeddings.LayerNorm.weight": source["embeddings.LayerNorm.weight"],
        f"{prefix}embeddings.LayerNorm.bias": source["embeddings.LayerNorm.bias"],
    }
    for new_index, old_index in enumerate(layers):
        for old, new in LAYER_MAP.items():
            for kind in ("weight", "bias"):
                student_name = f"{prefix}transformer.layer.{new_index}.{new}.{kind}"
                state[student_name] = source[f"encoder.layer.{old_index}.{old}.{kind}"]
    if with_head:
        head = teacher.state_dict()
        for old, new in MLM_HEAD_MAP.items():
            for kind in ("weight", "bias"):
                state[f"{new}.{kind}"] = head[f"{old}.{kind}"]
        state["vocab_projector.bias"] = head["cls.predictions.bias"]
    student.load_state_dict(state, strict=False)
    student.tie_weights()
    return student.train(teacher.training)
