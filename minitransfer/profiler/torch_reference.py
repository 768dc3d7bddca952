"""The same step in PyTorch's profiler, to read beside ours: transformers' model from the same checkpoint.

Only `minitransfer profile --compare-torch` imports this (torch and transformers are test extras, never
needed by the library). transformers computes the padded batch, padding included.
"""
from __future__ import annotations

from pathlib import Path


def torch_profile_table(path: Path, task: str, batch: dict, num_labels: int, freeze_layers: int = 0,
                        inference: bool = False, warmup: int = 1, rows: int = 15) -> str:
    """torch.profiler's key_averages() table (by self CPU time) of one step: forward, backward, AdamW."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # its loading report would bury the table
    auto = {"cls": transformers.AutoModelForSequenceClassification, "qa": transformers.AutoModelForQuestionAnswering,
            "mlm": transformers.AutoModelForMaskedLM}[task]
    model = auto.from_pretrained(str(path), **({"num_labels": num_labels} if task == "cls" else {}))
    body = model.base_model
    layers = body.encoder.layer if hasattr(body, "encoder") else body.transformer.layer
    if freeze_layers:
        for module in [body.embeddings, *layers[:freeze_layers]]:
            module.requires_grad_(False)
    inputs = {k: torch.as_tensor(v) for k, v in batch.items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = None if inference else torch.optim.AdamW(trainable, lr=5e-5)
    model.train(not inference)

    def step() -> None:
        if optimizer is None:
            with torch.no_grad():
                model(**inputs)
            return
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(warmup):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
