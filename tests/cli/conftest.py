"""Fixtures of the CLI tests."""
import shutil

import pytest

from minitransfer.models import BertForSequenceClassification, ModelConfig


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, minilm_path):
    """A tiny random BERT body (no MLM head, like MiniLM) with MiniLM's tokenizer."""
    path = tmp_path_factory.mktemp("tiny")
    config = ModelConfig("bert", hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)
    BertForSequenceClassification(config).body.save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, path / name)
    return path
