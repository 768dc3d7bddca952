"""Real-length batches: minitransfer (packed, its default) vs PyTorch + transformers (padded), same arrays.

Ours runs as minitransfer runs by default (only real tokens computed), transformers as its users run it (padded
batches with an attention mask); one process, the same arrays, alternating.

    python benchmarks/bench_packed.py [--rows sst2,qa,mrpc] [--modes inference,train0,train0.1] [--repeats 10]
                                      [--batches 10] [--warmup N] [--seed 0] [--no-padding-free]
                                      [--torch-attn sdpa|eager] [--squad-file F]

Model: the real all-MiniLM-L6-v2 checkpoint (BERT, 6 layers, hidden 384) with a fresh head. Each head is drawn
once (ours, seed 0) and saved with save_pretrained into a temp dir that BOTH libraries load, so both start from
the same weights: a 2-label sequence classifier (BERT pooler -> dropout -> classifier) for sst2 and mrpc, a span
head (qa_outputs: hidden -> start/end logits) for qa.

Rows (tokenized once with minitransfer.AutoTokenizer; both libraries get the very same int64 arrays):
  sst2  SST-2 train sentences, --batches random batches of 32 (numpy default_rng(--seed)), padded to the longest
        in the batch, truncation at 128 tokens.
  qa    SQuAD-format windows made by minitransfer's own run_qa-style feature code (tasks/squad/features.py:
        max_length 384, doc stride 128, padded to 384 as run_qa.py's padding="max_length"); random batches of 8
        windows, with their start/end positions. Data: shared SQuADShifts new_wiki, else the shipped sample.json.
  mrpc  MRPC train sentence pairs, random batches of 32, padded to the longest, truncation at 128 (skipped when
        ../shared/data/mrpc/train.tsv is missing: no MRPC is shipped in the repo).
  Where ../shared/data is missing, sst2 reads the shipped minitransfer/data/sst2/train_subset.tsv and qa the
  shipped minitransfer/data/squad/sample.json.

Modes: inference (eval mode, no_grad, the head's logits, dropout 0 config), train dropout 0 (train mode,
forward + backward of the head's loss: cross-entropy on the batch's labels, or start/end positions; dropout
overrides hidden_dropout_prob = attention_probs_dropout_prob = 0 on both sides), train dropout 0.1 (the same
with the checkpoint's own dropout 0.1). No optimizer step; zero_grad is inside the timed step on both sides.

Method: one process holds both models. For each row and mode: --warmup untimed steps of each side (batches
0, 1, ...; default one pass over all --batches, so no timed step is the first of its shape), then --repeats
alternating timed steps, ours and torch on the same batch (cycling over the --batches fixed batches), who goes
first swapping every repeat. This machine has slow spells (the same GEMMs 40% slower
for minutes): alternating puts them on both sides.
  ms = median wall time of a step; speed ours/torch = torch ms / ours ms (above 1: ours is faster).
  tokens/s = mean real (attention_mask 1) tokens per timed step / median step time, for both sides.
  GFLOP/s = mean FLOPs per timed step / median step time. Forward FLOPs = 2 · P · T + 4 · L · hidden · Σ_i n_i²
  with P = weights of the encoder's Linear layers (L · (4·hidden² + 2·hidden·ffn)), T = Σ_i n_i tokens and n_i
  the length of sequence i as each side computes it: ours the real lengths (packed: no padding reaches a GEMM
  or attention), torch the padded length of every row (it computes the padding too). With --no-padding-free ours
  is counted padded as well. Embeddings, pooler, heads, biases, LayerNorm, softmax, GELU are not counted; a
  training step counts 3 × forward.
  % peak: GFLOP/s over the measured peak (best 2048² float32 NumPy matmul, at start and at end, the larger).
  checksum (dropout 0 modes): float64 sum of the head's logits on real tokens (classification: both logits of
  every row; qa: start and end logits where attention_mask is 1) for batch 0, ours beside torch's, and the max
  |ours - torch| of those logits. In train mode the logits are those of the training forward.
Threads: torch.set_num_threads(2); NumPy's OpenBLAS and numba use the machine's cores. `import minitransfer`
comes first (as in bench_model.py and the CLI): OPENBLAS_THREAD_TIMEOUT, OMP_WAIT_POLICY=PASSIVE (read by
torch's OpenMP too, in this one process) and the malloc setting apply to both sides; they are printed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

# isort: off
import minitransfer as mt  # before NumPy, so its OpenBLAS setting applies as it does in the CLI
import numpy as np
# isort: on

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ROWS = ("sst2", "qa", "mrpc")
# flag -> (label, train?, dropout override: None keeps the checkpoint's 0.1)
MODES = {"inference": ("inference", False, 0.0), "train0": ("train dropout 0", True, 0.0),
         "train0.1": ("train dropout 0.1", True, None)}
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile", "amx_bf16")


# ---- data: fixed batches of numpy arrays ----
def classification_batches(path: Path, tokenizer, n_batches: int, batch_size: int, seed: int,
                           max_length: int = 128) -> list[dict[str, np.ndarray]]:
    """Random batches of a classification file, each padded to its longest row (truncation at max_length)."""
    from minitransfer.tasks.classification.data import read_classification_file

    data = read_classification_file(path)
    labels = data.labels()
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        rows = rng.choice(len(data), size=min(batch_size, len(data)), replace=False)
        texts = [data[int(i)].text for i in rows]
        pairs = [data[int(i)].text_pair for i in rows] if data.has_pairs else None
        enc = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        batch = {k: np.ascontiguousarray(enc[k], dtype=np.int64)
                 for k in ("input_ids", "attention_mask", "token_type_ids")}
        batch["labels"] = labels[rows].astype(np.int64)
        batches.append(batch)
    return batches


def qa_batches(path: Path, tokenizer, n_batches: int, batch_size: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Random batches of run_qa-style training windows (384 tokens, stride 128, padded to 384)."""
    from minitransfer.tasks.squad import prepare_train_features, read_squad

    features = prepare_train_features(read_squad(path), tokenizer, max_length=384, doc_stride=128)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        rows = rng.choice(len(features), size=min(batch_size, len(features)), replace=False)
        batch = {k: np.ascontiguousarray(v, dtype=np.int64) for k, v in features.model_inputs(rows).items()}
        batch["start_positions"] = features.start_positions[rows].astype(np.int64)
        batch["end_positions"] = features.end_positions[rows].astype(np.int64)
        batches.append(batch)
    return batches


def row_source(row: str, squad_file: str | None) -> Path | None:
    """The data file of a row: ../shared/data when present, else the file shipped in the repo (None: none)."""
    if row == "sst2":
        shared = SHARED / "sst2" / "train.tsv"
        return shared if shared.is_file() else REPO / "minitransfer" / "data" / "sst2" / "train_subset.tsv"
    if row == "mrpc":
        shared = SHARED / "mrpc" / "train.tsv"
        return shared if shared.is_file() else None
    if squad_file:
        return Path(squad_file)
    shared = SHARED / "squad" / "squadshifts" / "new_wiki_v1.0.json"
    from minitransfer.tasks.squad import sample_path

    return shared if shared.is_file() else sample_path()


# ---- models ----
def make_heads(path: Path, tmp: Path) -> dict[str, Path]:
    """One fresh head per task on the checkpoint's body, saved once; both libraries load these directories."""
    dirs = {}
    for head, cls in (("cls", mt.AutoModelForSequenceClassification), ("qa", mt.AutoModelForQuestionAnswering)):
        mt.manual_seed(0)
        kwargs = {"num_labels": 2} if head == "cls" else {}
        model = cls.from_pretrained(path, **kwargs)
        missing = [k for k in model.loading_info["missing_keys"] if not k.startswith(("classifier", "qa_outputs"))]
        if missing:
            raise RuntimeError(f"the checkpoint lacks body weights {missing[:5]}: they would be random")
        model.save_pretrained(tmp / head)
        dirs[head] = tmp / head
    return dirs


class Models:
    """Each (library, head, dropout) model, loaded on first use and kept."""

    def __init__(self, dirs: dict[str, Path], padding_free: bool, torch_attn: str):
        self.dirs, self.padding_free, self.torch_attn = dirs, padding_free, torch_attn
        self.cache: dict[tuple, object] = {}

    @staticmethod
    def overrides(dropout: float | None) -> dict:
        return {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}

    def ours(self, head: str, dropout: float | None):
        key = ("ours", head, dropout)
        if key not in self.cache:
            cls = mt.AutoModelForSequenceClassification if head == "cls" else mt.AutoModelForQuestionAnswering
            self.cache[key] = cls.from_pretrained(self.dirs[head], padding_free=self.padding_free,
                                                  **self.overrides(dropout))
        return self.cache[key]

    def torch(self, head: str, dropout: float | None):
        key = ("torch", head, dropout)
        if key not in self.cache:
            import torch
            import transformers

            cls = (transformers.AutoModelForSequenceClassification if head == "cls"
                   else transformers.AutoModelForQuestionAnswering)
            model, info = cls.from_pretrained(self.dirs[head], dtype=torch.float32, attn_implementation=self.torch_attn,
                                              output_loading_info=True, **self.overrides(dropout))
            if info["missing_keys"]:
                raise RuntimeError(f"transformers found no weights for {sorted(info['missing_keys'])[:5]}")
            self.cache[key] = model
        return self.cache[key]


# ---- one step of each library ----
def ours_step(model, batch: dict, targets: tuple[str, ...], train: bool):
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    if not train:
        with mt.no_grad():
            return model(**inputs)
    model.zero_grad()
    out = model(**inputs, **{k: batch[k] for k in targets})
    out.loss.backward()
    return out


def torch_step(model, batch: dict, targets: tuple[str, ...], train: bool):
    import torch

    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    if not train:
        with torch.no_grad():
            return model(**inputs)
    model.zero_grad()
    out = model(**inputs, **{k: batch[k] for k in targets})
    out.loss.backward()
    return out


def real_logits(out, batch: dict, head: str, to_numpy) -> np.ndarray:
    """The head's logits on real tokens, float64, flattened (classification: every row's logits)."""
    if head == "cls":
        return to_numpy(out.logits).astype(np.float64).ravel()
    real = batch["attention_mask"].astype(bool)
    return np.concatenate([to_numpy(out.start_logits)[real], to_numpy(out.end_logits)[real]]).astype(np.float64)


def ours_numpy(t) -> np.ndarray:
    return np.asarray(t.numpy())


def torch_numpy(t) -> np.ndarray:
    return t.detach().numpy()


# ---- measuring ----
def forward_flops(config: dict, lengths: np.ndarray) -> float:
    """2·P·T + 4·L·hidden·Σ n_i² for sequences of the given lengths (see the module docstring)."""
    hidden, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    linear_params = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    lengths = lengths.astype(np.float64)
    return 2 * linear_params * lengths.sum() + 4 * layers * hidden * (lengths**2).sum()


def measure(row: str, mode: str, batches: list[dict], models: Models, args, config: dict) -> dict:
    label, train, dropout = MODES[mode]
    head = "qa" if row == "qa" else "cls"
    targets = ("start_positions", "end_positions") if head == "qa" else ("labels",)
    ours, theirs = models.ours(head, dropout), models.torch(head, dropout)
    import torch

    torch_batches = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]  # same memory as numpy
    ours.train(train)
    theirs.train(train)
    steps = {"ours": lambda i: ours_step(ours, batches[i], targets, train),
             "torch": lambda i: torch_step(theirs, torch_batches[i], targets, train)}
    for i in range(args.warmup):
        for impl in ("ours", "torch"):
            steps[impl](i % len(batches))
    times: dict[str, list[float]] = {"ours": [], "torch": []}
    used = []
    for r in range(args.repeats):
        b = r % len(batches)
        used.append(b)
        for impl in (("ours", "torch") if r % 2 == 0 else ("torch", "ours")):
            start = time.perf_counter()
            steps[impl](b)
            times[impl].append((time.perf_counter() - start) * 1e3)
    print(f"  {row} {label}: ours {_fmt(times['ours'])} ms | torch {_fmt(times['torch'])} ms", flush=True)

    masks = [batches[b]["attention_mask"] for b in used]
    real_lengths = [m.sum(axis=1) for m in masks]
    padded_lengths = [np.full(m.shape[0], m.shape[1]) for m in masks]
    per_step = 3 if train else 1
    ours_lengths = real_lengths if args.padding_free else padded_lengths
    result = {
        "row": row, "mode": label, "dropout": dropout, "times": times,
        "real_tokens": float(np.mean([lengths.sum() for lengths in real_lengths])),
        "flops": {"ours": per_step * float(np.mean([forward_flops(config, n) for n in ours_lengths])),
                  "torch": per_step * float(np.mean([forward_flops(config, n) for n in padded_lengths]))},
    }
    if dropout == 0.0:  # parity check on batch 0
        a = real_logits(steps["ours"](0), batches[0], head, ours_numpy)
        t = real_logits(steps["torch"](0), batches[0], head, torch_numpy)
        result["checksum"] = {"ours": float(a.sum()), "torch": float(t.sum()),
                              "max_abs_diff": float(np.abs(a - t).max())}
    return result


# ---- output ----
def header(args, peak_start: float) -> None:
    import numba
    import torch

    info = common._lscpu()
    flags = set(info.get("Flags", "").split())
    isa = " ".join(f for f in ISA_FLAGS if f in flags) or "none of " + " ".join(ISA_FLAGS)
    theory, how = common.theoretical_peak_gflops()
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {common.cpu_model()}, {os.cpu_count()} cores (lscpu model name: {info.get('Model name', '?')}; "
          f"ISA flags: {isa})")
    print("theoretical peak: " + (f"{theory:.0f} GFLOP/s = {how}" if theory else f"unknown ({how})"))
    print(f"numpy BLAS: {common.blas_description()}")
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, attention={args.torch_attn}; "
          f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads; minitransfer "
          f"{'packed (padding_free=True)' if args.padding_free else 'padded (padding_free=False)'}")
    env = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in
                    ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "MINITRANSFER_KEEP_FREED_MEMORY"))
    print(f"env (one process, both libraries): {env}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on the machine skew every figure)")
    print(f"timing: {args.warmup} warmup steps per side, then {args.repeats} alternating timed steps per side over "
          f"{args.batches} fixed batches; peak at start {peak_start:.0f} GFLOP/s", flush=True)


def print_table(results: list[dict], rows_info: dict, peak: float, padding_free: bool) -> None:
    ours_name = "ours (packed)" if padding_free else "ours (padded)"
    print(f"\n| row | batch: real / padded tokens | mode | {ours_name} ms | torch ms | speed ours/torch | "
          "ours tokens/s | torch tokens/s | ours % peak | torch % peak | logits checksum ours / torch (max diff) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        ms = {k: common.median(v) for k, v in r["times"].items()}
        tps = {k: r["real_tokens"] / (ms[k] / 1e3) for k in ms}
        pct = {k: 100 * r["flops"][k] / (ms[k] / 1e3) / 1e9 / peak for k in ms}
        info = rows_info[r["row"]]
        check = "–"
        if "checksum" in r:
            c = r["checksum"]
            check = f"{c['ours']:.6g} / {c['torch']:.6g} ({c['max_abs_diff']:.1e})"
        print(f"| {info['label']} | {info['real']:,} / {info['padded']:,} ({info['ratio']:.0%} real) | {r['mode']} | "
              f"{ms['ours']:,.1f} | {ms['torch']:,.1f} | **{ms['torch'] / ms['ours']:.2f}×** | {tps['ours']:,.0f} | "
              f"{tps['torch']:,.0f} | {pct['ours']:.1f}% | {pct['torch']:.1f}% | {check} |")
    print("speed ours/torch = torch ms / ours ms (above 1: ours is faster); tokens/s counts real tokens on both "
          "sides; % peak: ours' FLOPs on " + ("real tokens (Σ n² attention)" if padding_free else "padded tokens")
          + ", torch's on padded tokens")


def _fmt(times: list[float]) -> str:
    return " ".join(f"{t:.0f}" for t in times)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See the module docstring for the method.")
    p.add_argument("--rows", default="sst2,qa,mrpc", help="comma list of: sst2, qa, mrpc")
    p.add_argument("--modes", default="inference,train0,train0.1", help="comma list of: inference, train0, train0.1")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per side for each row and mode")
    p.add_argument("--batches", type=int, default=10, help="fixed batches per row, cycled over")
    p.add_argument("--warmup", type=int, help="untimed steps per side before timing, each row and mode "
                   "(default: --batches, one pass over every batch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch sampling")
    p.add_argument("--no-padding-free", dest="padding_free", action="store_false",
                   help="run ours with padding_free=False (its padded path) for comparison")
    p.add_argument("--torch-attn", default="sdpa", choices=["sdpa", "eager"],
                   help="transformers' attention implementation (its default is sdpa)")
    p.add_argument("--squad-file", help="SQuAD-format JSON for the qa row (default: shared new_wiki, else shipped)")
    p.add_argument("--model", default="minilm", help="BERT checkpoint directory or cached alias (default: minilm)")
    args = p.parse_args()
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name, values, known in (("--rows", args.rows, ROWS), ("--modes", args.modes, MODES)):
        bad = [v for v in values if v not in known]
        if bad:
            p.error(f"{name}: unknown {bad}; choose from {', '.join(known)}")
    if args.warmup is None:
        args.warmup = args.batches
    if min(args.repeats, args.batches) < 1 or args.warmup < 0:
        p.error("--repeats and --batches must be >= 1, --warmup >= 0")
    return args


def main() -> None:
    args = parse_args()
    import torch
    from transformers.utils import logging as transformers_logging

    from minitransfer.io.hub import resolve_model_path

    torch.set_num_threads(2)
    transformers_logging.disable_progress_bar()  # its "Loading weights" bar, at every model load
    path = resolve_model_path(args.model)
    config = json.loads((path / "config.json").read_text())
    peak_start = common.measured_peak_gflops()
    header(args, peak_start)
    tokenizer = mt.AutoTokenizer.from_pretrained(path)

    rows_info, data = {}, {}
    for row in args.rows:
        source = row_source(row, args.squad_file)
        if source is None:
            print(f"{row}: skipped, {SHARED / 'mrpc' / 'train.tsv'} not found (no MRPC is shipped in the repo)")
            continue
        if row == "qa":
            batches = qa_batches(source, tokenizer, args.batches, 8, args.seed)
        else:
            batches = classification_batches(source, tokenizer, args.batches, 32, args.seed)
        real = int(sum(b["attention_mask"].sum() for b in batches))
        padded = int(sum(b["attention_mask"].size for b in batches))
        size = len(batches[0]["input_ids"])
        label = {"sst2": "SST-2", "qa": "QA windows", "mrpc": "MRPC pairs"}[row] + f" b{size}"
        rows_info[row] = {"label": label, "real": real // len(batches), "padded": padded // len(batches),
                          "ratio": real / padded}
        data[row] = batches
        lens = np.concatenate([b["attention_mask"].sum(axis=1) for b in batches])
        print(f"{row}: {source}; {len(batches)} batches of {size}; real / padded tokens per batch "
              f"{real / len(batches):,.0f} / {padded / len(batches):,.0f} = {real / padded:.1%}; sequence lengths "
              f"min {lens.min()} median {int(np.median(lens))} max {lens.max()}; padded widths "
              f"{sorted({b['input_ids'].shape[1] for b in batches})}", flush=True)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        models = Models(make_heads(path, Path(tmp)), args.padding_free, args.torch_attn)
        for row in data:
            for mode in args.modes:
                results.append(measure(row, mode, data[row], models, args, config))
    peak_end = common.measured_peak_gflops()
    peak = max(peak_start, peak_end)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(f"peak float32: measured {peak:.0f} GFLOP/s (best 2048² NumPy matmul of 10, at start {peak_start:.0f}, "
          f"at end {peak_end:.0f})")
    print_table(results, rows_info, peak, args.padding_free)


if __name__ == "__main__":
    main()
