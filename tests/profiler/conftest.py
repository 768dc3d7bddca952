"""A tiny BERT built in memory (the FLOP formulas' model) and one saved with MiniLM's tokenizer (the CLI's)."""
import numpy as np
import pytest

from tests.conftest import save_tiny_bert

# Two sequences of 6 and 4 real tokens: packed, T = 10 tokens and Σ L² = 52.
IDS = np.array([[101, 5, 6, 7, 8, 102], [101, 9, 10, 102, 0, 0]])
MASK = (IDS != 0).astype(np.int64)
SIZES = dict(vocab_size=200, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=32)


def tiny_classifier(**config):
    from minitransfer.models import BertForSequenceClassification, ModelConfig
    from minitransfer.seeding import manual_seed

    manual_seed(0)
    return BertForSequenceClassification(ModelConfig("bert", **{**SIZES, **config}))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, minilm_path):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-profile"), minilm_path)
