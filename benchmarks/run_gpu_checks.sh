#!/usr/bin/env bash
# The one prepared script for a session that is lent a GPU machine (issue 18, item 4): tests/gpu for real, then
# benchmarks/bench_gpu.py (ours vs PyTorch eager AMP), logs and the JSON of every figure under $OUT.
#
# The call, from the session's repository root (device README: one command <= 600 s, 15 minutes of device time in
# all, starts included; what the command leaves under $OUT comes back, at most 8 files):
#
#     run(command="bash benchmarks/run_gpu_checks.sh", timeout_s=600)
#
# add carry=[".whl"] only if you fetched wheels (below). The steps' own timeouts add up to 570 s at most (info 60,
# packages 30 + 60 only when one is missing, tests 210, benchmark 210, each with its 10 s grace), so the script ends,
# and $OUT comes back, before the call's limit. One try costs ~2 minutes of start + ~4-9 of run: there is time for one
# rerun only if the first dies early (read summary.txt and the logs, fix, rerun at once; else call give_back).
#
# What comes back in $OUT (./gpu-out when OUT is unset): env.log (nvidia-smi, versions), packages.log (only if
# something was installed), tests_gpu.log + tests_gpu.xml (junit), bench_gpu.log, bench_gpu.json, summary.txt
# (each step's exit status). Exit status: 0 when the tests and the benchmark passed, 1 if the tests failed (the
# benchmark still runs), 2 if only the benchmark failed.
#
# Packages. The lent machine (KINDS.md, nvidia-h200) reaches no registry, so `pip install -e '.[test,gpu]'` cannot
# run there ('[gpu]' would also pull cupy-cuda12x; the image is CUDA 13). Its python3 already holds cupy-cuda13x,
# numba-cuda, numba, torch, transformers, tokenizers, safetensors, tqdm and pytest, so this script runs the checkout
# in place (PYTHONPATH=., minitransfer/kernels linked to ../kernels as in a development checkout). Only where an
# import fails on a machine with a GPU does it install, with --no-deps into $SITE (default /tmp/minitransfer-gpu-
# site), never into the interpreter's environment: from ./.whl (carried) when present, else from the registries
# where they can be reached (cupy-cuda13x or -12x by the driver's CUDA version, numba-cuda==0.30.4). To carry
# wheels, on the development machine first (Python 3.12, x86-64, as on the lent machine):
#     bash benchmarks/run_gpu_checks.sh --fetch-wheels      # writes .whl/ and adds it to .git/info/exclude
#
# Env: PYTHON (default python3), OUT, PYTEST_ARGS (default tests/gpu), BENCH_ARGS (default none; e.g. --smoke to
# try this script on a CPU machine: `OUT=/tmp/g PYTHON=.venv/bin/python PYTEST_ARGS=tests/gpu/test_gelu_cuda.py
# BENCH_ARGS=--smoke bash benchmarks/run_gpu_checks.sh`).
set -uo pipefail  # no -e: a failing step is recorded and the next one still runs
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [[ ${1:-} == --fetch-wheels ]]; then
  set -e
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl numba-cuda==0.30.4
  ls -la .whl
  exit 0
fi

OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM  # the real GPU, not the simulator (tests/conftest.py sets it only without nvidia-smi)
[[ -e minitransfer/kernels ]] || ln -s ../kernels minitransfer/kernels  # git-ignored, so it does not travel
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

# 1. the machine and the versions
{
  date -u '+%Y-%m-%d %H:%M UTC'
  git log -1 --format='commit %H %s' 2>/dev/null
  timeout 15 nvidia-smi || echo "nvidia-smi: not found or failed"
  timeout 45 "$PYTHON" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("minitransfer", "minitransfer.kernels", "numpy", "cupy", "numba", "numba_cuda", "torch", "transformers",
             "tokenizers", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), "at", getattr(module, "__file__", "?"))
    except Exception as e:  # noqa: BLE001
        print(name, "MISSING:", type(e).__name__, e)
EOF
} 2>&1 | tee "$OUT/env.log"

# 2. packages, only where an import fails and a GPU is there (a CPU machine lacks CuPy by design), and only into
# $SITE (put first on PYTHONPATH), never into the interpreter's own environment; --no-deps: the image holds the rest
SITE=${SITE:-/tmp/minitransfer-gpu-site}
missing=$(timeout 30 "$PYTHON" -c "
import importlib.util as u
print(' '.join(n for n in ('cupy', 'numba_cuda', 'torch', 'transformers', 'pytest', 'tokenizers', 'safetensors')
               if u.find_spec(n) is None))")
if [[ -n $missing ]] && timeout 15 nvidia-smi -L > /dev/null 2>&1; then
  {
    echo "missing: $missing; installing into $SITE"
    if compgen -G '.whl/*.whl' > /dev/null; then
      timeout 60 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        .whl/*.whl
    else
      cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
      packages=()
      for name in $missing; do
        case $name in
          cupy) packages+=("cupy-cuda$([[ ${cuda:-12} -ge 13 ]] && echo 13x || echo 12x)") ;;
          numba_cuda) packages+=(numba-cuda==0.30.4) ;;
          *) packages+=("$name") ;;
        esac
      done
      timeout 60 "$PYTHON" -m pip install -q --no-deps --retries 1 --timeout 15 --target "$SITE" "${packages[@]}"
    fi
  } 2>&1 | tee "$OUT/packages.log"
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
  note "packages: installed for '$missing' into $SITE (packages.log)"
elif [[ -n $missing ]]; then
  note "packages: missing '$missing'; no GPU here, so nothing installed"
fi

# 3. tests/gpu on the GPU; SIGINT at the limit so pytest still prints its summary and writes the junit file
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
timeout -s INT -k 10 200 "$PYTHON" -m pytest ${PYTEST_ARGS:-tests/gpu} -q -rs -p no:cacheprovider \
  --junitxml="$OUT/tests_gpu.xml" 2>&1 | tee "$OUT/tests_gpu.log"
tests=${PIPESTATUS[0]}
note "tests: exit $tests ($(tail -n 1 "$OUT/tests_gpu.log"))"

# 4. the benchmark (bench_gpu.py rewrites the JSON after each section, so a timeout keeps what was measured)
# shellcheck disable=SC2086
timeout -s INT -k 10 200 "$PYTHON" benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" ${BENCH_ARGS:-} 2>&1 \
  | tee "$OUT/bench_gpu.log"
bench=${PIPESTATUS[0]}
note "benchmark: exit $bench"
grep -E '^(ours vs|FAILED)' "$OUT/bench_gpu.log" | tee -a "$SUMMARY"

if [[ $tests -ne 0 ]]; then exit 1; fi
if [[ $bench -ne 0 ]]; then exit 2; fi
exit 0
