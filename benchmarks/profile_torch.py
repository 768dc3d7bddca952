"""`minitransfer profile` beside PyTorch's profiler: the same step, the same checkpoint and batch, in one run.

    python benchmarks/profile_torch.py [the flags of `minitransfer profile`: --model M --task cls|qa|mlm ...]

Ours first (the table of `minitransfer profile`), then torch.profiler's key_averages() table of the same step
(forward, backward, AdamW) with transformers' model loaded from the same checkpoint. transformers computes the
padded batch, padding included. Here, not in the library: minitransfer never imports torch.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
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


def main(argv: list[str]) -> int:
    if not all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        print("this comparison needs PyTorch and transformers: pip install torch transformers "
              "(or minitransfer's [test] extra)", file=sys.stderr)
        return 2
    from minitransfer.cli import main as minitransfer_main
    from minitransfer.cli.inspect_commands import add_step_flags, prepared
    from minitransfer.io.hub import resolve_model_path

    status = minitransfer_main(["profile", *argv])
    if status != 0:
        return status
    parser = argparse.ArgumentParser()  # the step flags again, to rebuild the very batch ours ran (seed 0)
    add_step_flags(parser, batch_size=8, seq_len=128)
    parser.add_argument("--inference", action="store_true")
    parser.add_argument("--warmup", type=int, default=1)
    args, _ = parser.parse_known_args(argv)
    model, batch = prepared(args)
    print("\nPyTorch (transformers, the same checkpoint and batch; padded):\n")
    print(torch_profile_table(resolve_model_path(args.model), args.task, batch, model.config.num_labels,
                              args.freeze_layers, args.inference, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
