"""The masked-LM loss from the labelled rows only vs over every real token's logits: one MiniLM MLM training step.

    python benchmarks/bench_mlm_loss.py

MiniLM with a fresh MLM head, 32 SST-2 sentences of the shipped subset (packed), 15% of real tokens labelled,
train mode, forward + backward; "old" is the loss over every real token's logits (what the model computed before
heads.MaskedLM.masked_lm_loss), "new" the model's own loss now; alternating, 8 rounds after one warm-up each.
Printed: (median ms, min ms) per side, real tokens, labelled tokens.
"""
import minitransfer as mt  # noqa: I001 (before NumPy, so its thread settings apply)
import numpy as np
from minitransfer import ops

import common

lines = open("minitransfer/data/sst2/train_subset.tsv", encoding="utf-8").read().splitlines()[1:33]
tokenizer = mt.AutoTokenizer.from_pretrained("minilm")
batch = dict(tokenizer([line.split("\t")[0] for line in lines], padding=True, truncation=True, max_length=128,
                       return_tensors="np"))
model = mt.AutoModelForMaskedLM.from_pretrained("minilm", allow_new_head=True).train()
labels = np.full(batch["input_ids"].shape, -100)
chosen = (np.random.default_rng(0).random(labels.shape) < 0.15) & (batch["attention_mask"] == 1)
labels[chosen] = batch["input_ids"][chosen]


def new():
    for p in model.parameters():
        p.grad = None
    model(**batch, labels=labels).loss.backward()


def old():
    for p in model.parameters():
        p.grad = None
    hidden, packed, _ = model.body.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    logits = model.predict(hidden)
    packed.to_padded(logits)  # the returned logits, as the model builds them
    ops.cross_entropy(logits, packed.pack(labels)).backward()


for step in (new, old):
    step()
times = {"old": [], "new": []}
for _ in range(8):
    for name, step in (("old", old), ("new", new)):
        times[name] += common.time_ms(step, repeats=1, warmup=0)
print({name: (round(sorted(ms)[len(ms) // 2], 1), round(min(ms), 1)) for name, ms in times.items()},
      "real tokens", int(batch["attention_mask"].sum()), "labelled", int(chosen.sum()))
