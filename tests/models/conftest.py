"""Tiny random BERT / DistilBERT checkpoints written by transformers itself, in both file formats."""
import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY_BERT = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=128, type_vocab_size=2)
TINY_DISTILBERT = dict(vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=128)


def make_checkpoint(directory, kind: str, fmt: str):
    """Save a random transformers model (kind: bert | bert-mlm | distilbert | distilbert-mlm) to `directory`.

    fmt: 'safetensors' via save_pretrained, or 'bin' via torch.save(state_dict) as older releases wrote it
    (tied weights sharing one storage included).
    """
    torch.manual_seed(0)
    if kind.startswith("bert"):
        config = transformers.BertConfig(**TINY_BERT)
        cls = transformers.BertForMaskedLM if kind.endswith("mlm") else transformers.BertModel
    else:
        config = transformers.DistilBertConfig(**TINY_DISTILBERT)
        cls = transformers.DistilBertForMaskedLM if kind.endswith("mlm") else transformers.DistilBertModel
    model = cls(config)
    with torch.no_grad():  # random, non-trivial LayerNorm and bias values so every parameter matters
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        model.save_pretrained(directory)
    else:
        config.architectures = [cls.__name__]
        (directory / "config.json").write_text(json.dumps(config.to_dict()))
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return model.eval()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """(kind, fmt) -> (path, torch model) for every kind and both formats."""
    root = tmp_path_factory.mktemp("checkpoints")
    out = {}
    for kind in ["bert", "bert-mlm", "distilbert", "distilbert-mlm"]:
        for fmt in ["safetensors", "bin"]:
            path = root / f"{kind}-{fmt}"
            out[kind, fmt] = path, make_checkpoint(path, kind, fmt)
    return out
