"""Data parallel on one machine: the MiniLM training step at global batch 32, 1 process x 2 threads vs 2 ranks x
1 thread (mpiexec), the share of the gradient allreduce hidden behind backward, and an alpha-beta model of ring
allreduce for clusters.

    python benchmarks/bench_data_parallel.py [--steps 8] [--ranks 2]

Each configuration runs in its own process(es): SST-2 random batches of 32 (each rank its slice of 32 / ranks),
forward + backward of a classification head + the bucketed gradient averaging (minitransfer/distributed), no
optimizer step; median step time after 2 warm-up steps. The word embedding is averaged by the rows the batch
touches (row_sparse, as the Trainer does), the rest in buckets. "exposed" = time spent in GradientReducer.finish()
after backward; "allreduce alone" = every gradient reduced densely with blocking allreduces after backward:
hidden share = 1 - exposed / alone.
Model: a ring allreduce of n bytes over p nodes takes 2 (p - 1) alpha + 2 (p - 1) / p * n / beta; a step's time is
compute + what of that does not overlap backward (backward ~ 2/3 of a step; assumed fully overlappable up to it).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# isort: off
import minitransfer as mt  # before NumPy, as the CLI
import numpy as np
# isort: on

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_packed
import common

GLOBAL_BATCH = 32


def child(steps: int) -> None:
    from minitransfer.distributed import GradientReducer, broadcast_parameters, get_communicator
    from minitransfer.io.hub import fetch_minilm

    comm = get_communicator()
    path = Path(fetch_minilm())
    tokenizer = mt.AutoTokenizer.from_pretrained(path)
    batches = bench_packed.classification_batches(bench_packed.row_source("sst2", None), tokenizer, steps + 2,
                                                  GLOBAL_BATCH, seed=0)
    mt.manual_seed(0)
    model = mt.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()
    params = [p for p in model.parameters() if p.requires_grad]
    broadcast_parameters(params, comm)
    sparse = model.bert.embeddings.word_embeddings.weight  # averaged by touched rows, as the Trainer does
    reducer = GradientReducer(params, comm, row_sparse=[sparse]) if comm.size > 1 else None
    times, exposed, alone = [], [], []
    for i, batch in enumerate(batches):
        rows = np.array_split(np.arange(GLOBAL_BATCH), comm.size)[comm.rank]
        mine = {k: v[rows] for k, v in batch.items()}
        model.zero_grad()
        start = time.perf_counter()
        model(**mine).loss.backward()
        before_finish = time.perf_counter()
        if reducer is not None:
            reducer.finish({id(sparse): mine["input_ids"].ravel()})
        end = time.perf_counter()
        if reducer is not None:  # the same buckets, blocking, after backward: what overlap saves
            buffers = [np.concatenate([p.grad.data.ravel() for p in params[j:j + 20]])
                       for j in range(0, len(params), 20)]
            comm.barrier()
            t0 = time.perf_counter()
            for buffer in buffers:
                comm.allreduce(buffer)
            alone.append(time.perf_counter() - t0)
            exposed.append(end - before_finish)
        if i >= 2:
            times.append(end - start)
    if comm.rank == 0:
        print(json.dumps({"ms": [t * 1e3 for t in times], "exposed_ms": [t * 1e3 for t in exposed[2:]],
                          "alone_ms": [t * 1e3 for t in alone[2:]],
                          "grad_bytes": int(sum(p.data.nbytes for p in params))}))


def run(ranks: int, steps: int) -> dict:
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // ranks))
    env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads)
    command = [sys.executable, __file__, "--child", "--steps", str(steps)]
    if ranks > 1:
        from minitransfer.distributed import find_mpiexec

        command = [find_mpiexec(), "-n", str(ranks), *command]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ring_allreduce_s(nbytes: float, nodes: int, gbit_s: float, alpha_s: float = 20e-6) -> float:
    beta = gbit_s * 1e9 / 8
    return 2 * (nodes - 1) * alpha_s + 2 * (nodes - 1) / nodes * nbytes / beta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--child", action="store_true")
    args = p.parse_args()
    if args.child:
        child(args.steps)
        return
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; machine: {common.cpu_model()}, "
          f"{os.cpu_count()} cores; numpy BLAS: {common.blas_description()}")
    print(f"command: python benchmarks/bench_data_parallel.py {' '.join(sys.argv[1:])}".rstrip())
    results = {}
    for _ in range(2):  # alternate, against the machine's slow spells
        for ranks in (1, args.ranks):
            results.setdefault(ranks, []).append(run(ranks, args.steps))
    single = float(np.median([t for r in results[1] for t in r["ms"]]))
    multi = float(np.median([t for r in results[args.ranks] for t in r["ms"]]))
    exposed = float(np.median([t for r in results[args.ranks] for t in r["exposed_ms"]]))
    alone = float(np.median([t for r in results[args.ranks] for t in r["alone_ms"]]))
    grad_bytes = results[1][0]["grad_bytes"]
    print(f"| configuration | step ms (median) |\n| --- | --- |\n| 1 process x {os.cpu_count()} threads, batch 32 | "
          f"{single:,.1f} |\n| {args.ranks} ranks x {max(1, (os.cpu_count() or 1) // args.ranks)} thread, "
          f"{GLOBAL_BATCH // args.ranks} each | {multi:,.1f} |")
    print(f"{args.ranks} ranks / 1 process: {multi / single:.3f}x the step time; gradients "
          f"{grad_bytes / 2**20:.1f} MiB; allreduce alone {alone:.1f} ms, exposed after backward {exposed:.1f} ms: "
          f"{max(0.0, 1 - exposed / alone):.0%} hidden behind backward")
    print("\nalpha-beta model (alpha 20 us per message), compute per node from the measured single-process step;"
          " efficiency with no overlap at all, and with the allreduce hidden behind backward (~2/3 of a step):")
    print("| model | per-node step s | gradient MB | nodes | link Gb/s | allreduce ms | efficiency, no overlap | "
          "efficiency, overlapped |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    models = {"MiniLM b32 x 128 (this run)": (single / 1e3, grad_bytes),
              "DistilBERT-base b32 x 384 (bench_model 8x384 train step x 4)": (4 * 4.89, 66.4e6 * 4)}
    for name, (compute, nbytes) in models.items():
        for nodes in (8, 64):
            for link in (25, 100):
                comm_s = ring_allreduce_s(nbytes, nodes, link)
                hidden = min(comm_s, compute * 2 / 3)  # at most all of backward
                exposed_s = comm_s - hidden
                print(f"| {name} | {compute:.2f} | {nbytes / 1e6:.0f} | {nodes} | {link} | {comm_s * 1e3:.1f} | "
                      f"{compute / (compute + comm_s):.1%} | {compute / (compute + exposed_s):.1%} |")


if __name__ == "__main__":
    main()
