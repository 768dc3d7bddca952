"""A PNG of a run's curves from its log history: training loss by step, eval metrics by step.

matplotlib is an optional extra (`pip install 'minitransfer[plot]'`), imported only here.
"""
from __future__ import annotations

from pathlib import Path

from minitransfer.errors import InputError
from minitransfer.training.callbacks import TrainerCallback


class PlotCallback(TrainerCallback):
    """plot=True: OUT/curves.png at the end of training, from the run's log history (rank 0 only)."""

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_metrics(state.log_history, Path(args.output_dir) / "curves.png")


def plot_metrics(records: list[dict], png_file: str | Path) -> Path:
    """Draw loss (left) and every numeric eval metric (right) of the log entries `records` into `png_file`."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        raise InputError("--plot needs matplotlib: pip install 'minitransfer[plot]'") from e
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if any(k.startswith("eval_") for k in r)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss")
    if any("eval_loss" in r for r in evals):
        left.plot([r["step"] for r in evals], [r.get("eval_loss") for r in evals], "o-", label="eval loss")
    left.set_xlabel("step")
    left.set_title("loss")
    left.legend()
    keys = sorted({k for r in evals for k, v in r.items() if isinstance(v, (int, float)) and k.startswith("eval_")
                   and k not in ("eval_loss", "eval_runtime", "eval_samples_per_second")})
    for key in keys:
        right.plot([r["step"] for r in evals], [r.get(key) for r in evals], "o-", label=key)
    right.set_xlabel("step")
    right.set_title("eval metrics")
    if keys:
        right.legend()
    fig.tight_layout()
    fig.savefig(png_file, dpi=100)
    plt.close(fig)
    return Path(png_file)
