"""Fixtures of the CLI tests."""
import pytest

from tests.conftest import save_tiny_bert


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, minilm_path):
    """A tiny random BERT body (no MLM head, like MiniLM) with MiniLM's tokenizer."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny"), minilm_path)
