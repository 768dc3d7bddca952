"""benchmarks/bench_gpu.py's logic, run on the CPU (--smoke: tiny shapes, NumPy float32, torch on the CPU, no AMP).

The GPU run happens once, in a session lent a GPU for 15 minutes (benchmarks/run_gpu_checks.sh), so the script must
not fail there for a reason the CPU could have shown: every section and implementation has to run and land in the
JSON under the keys RESULTS.md is written from.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
IMPLS = {"ours", "torch_sdpa", "torch_eager"}


def test_bench_gpu_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "smoke" and report["kernels"] == "reference"
    assert {"python", "numpy", "torch", "transformers", "gpu"} <= report["environment"].keys()

    attention = report["attention"]
    assert attention["shape"] == [2, 2, 16, 8] and attention["errors"] == {}
    assert attention["ours_class"] == "ReferenceAttention"  # the switch, as --smoke sets it
    assert attention["flops"]["forward_backward"] == 3.5 * attention["flops"]["forward"] == 3.5 * 4 * 2 * 2 * 16**2 * 8
    assert attention["results"].keys() == IMPLS
    for r in attention["results"].values():
        for phase in ("forward", "forward_backward"):
            assert r[f"{phase}_ms"] > 0 and r[f"{phase}_tflops"] > 0 and len(r[f"{phase}_runs"]) == 2
    assert all(v > 0 for v in attention["ours_vs_torch_sdpa"].values())
    assert max(attention["max_abs_diff_vs_torch_sdpa"].values()) < 1e-5  # float32: the same attention

    qa = report["qa_step"]
    assert (qa["batch"], qa["seq"]) == (2, 16) and qa["errors"] == {}
    assert qa["results"].keys() == IMPLS
    for r in qa["results"].values():
        assert r["ms"] > 0 and r["tokens_per_s"] > 0 and r["tflops"] > 0 and 0 < r["last_loss"] < 10
        assert r["skipped_steps"] == 0 and r["final_scale"] == 1.0  # no AMP: disabled scalers
    assert qa["results"]["ours"]["steps"] == qa["results"]["torch_sdpa"]["steps"] + 1  # + the profiled step
    assert "ReferenceVarlenAttention" in qa["ours_ops"] and qa["ours_cuda_ops"] == []  # padding-free, on the CPU
    assert qa["ours_vs_torch_sdpa"] > 0 and qa["ours_vs_torch_eager"] > 0
