"""BERT WordPiece tokenization: a thin layer over Hugging Face `tokenizers`, used like transformers'.

    tok = AutoTokenizer.from_pretrained("minilm")          # alias or a model folder
    batch = tok(["a sentence", "another one"], padding=True, return_tensors="np")
    batch["input_ids"]        # (batch, seq) int64
    tok("a sentence")["input_ids"]                          # [101, 1037, 6251, 102]: lists, as transformers

loading.py turns tokenizer files into a `tokenizers.Tokenizer` and its settings (and back); encoding.py turns
text into ids (pairs, truncation, stride windows, offsets, padding, lists or NumPy arrays) and pads features;
tokenizer.py is the BertTokenizer that holds both, with its vocabulary and decoding.
"""
from minitransfer.tokenization.encoding import BatchEncoding
from minitransfer.tokenization.tokenizer import AutoTokenizer, BertTokenizer

__all__ = ["AutoTokenizer", "BatchEncoding", "BertTokenizer"]
