#!/usr/bin/env bash
# The GPU checks of issue 11 in one run (~8 minutes on an H200):
#   1. the CUDA tests (trace against the step-by-step definition, statistics on the device,
#      a whole analysis on CUDA against the CPU's);
#   2. trace + statistics against one cuDNN nn.LSTM forward (target >= 0.5x);
#   3. the analysis of an (untrained) 2x1500 LSTM over Brown's test split, h and c (target < 60 s);
#   4. 3 epochs of lstm-medium, our trainer against the plain loop of bench/bench_train.py (target >= 1.0x).
#
#   bench/gpu_check.sh            # on a GPU machine: torch, numpy, pandas, pyarrow, scikit-learn, tqdm
#   bench/gpu_check.sh --quick    # tiny sizes on any machine: checks that every step runs end to end
#
# DuckDB (the store's views) is installed from a carried wheel when missing:
#   echo /.whl/ >> .git/info/exclude; pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 -d .whl duckdb==2.0.1
# and the device tool's run gets carry [".whl"] and the command "bash bench/gpu_check.sh".
# Logs and summary.txt go to $OUT (the device tool's folder) or /tmp/rnnvis-gpu-check.
set -u -o pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
# --quick checks that the steps run, not their speed: one thread each (a shared CPU machine's
# OpenMP threads can be 10x slower than one).
[ "$QUICK" = 1 ] && export OMP_NUM_THREADS=1
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LOGS=${OUT:-/tmp/rnnvis-gpu-check}
mkdir -p "$LOGS"
SUMMARY="$LOGS/summary.txt"
: > "$SUMMARY"
export PYTHONUNBUFFERED=1 PYTHONPATH=".:${PYTHONPATH:-}"

if ! $PY -c "import duckdb" 2>/dev/null && ls .whl/duckdb-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
HAVE_DUCKDB=$($PY -c "import duckdb" 2>/dev/null && echo 1 || echo 0)

say() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S COMMAND...: run with a time limit, log to $LOGS/NAME.log, note status and time.
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    local rc=${PIPESTATUS[0]}
    say "== $name: exit $rc after $((SECONDS - t0)) s"
    return 0
}

say "gpu_check $(date -u +%Y-%m-%dT%H:%MZ) device=$DEVICE duckdb=$HAVE_DUCKDB quick=$QUICK"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" \
    | tee -a "$SUMMARY"

TESTS=(tests/models/test_rnn.py tests/analytics/test_responses.py tests/analytics/test_device.py)
# The analysis tests run their tiny models on the CPU: on a GPU machine's 16 cores they are quick.
[ "$HAVE_DUCKDB" = 1 ] && [ "$QUICK" = 0 ] && TESTS+=(tests/analytics/test_pipeline.py tests/analytics/test_continuous.py)
step tests 150 $PY -m pytest -q -p no:cacheprovider "${TESTS[@]}"
grep -E "passed|failed" "$LOGS/tests.log" | tail -1 >> "$SUMMARY"

if [ "$QUICK" = 1 ]; then
    step trace 120 $PY bench/bench_trace.py --device "$DEVICE" --hidden 32 --chunks 1 --steps 32 --batch 8 \
        --vocab 500 --repeats 1
else
    step trace 90 $PY bench/bench_trace.py --device "$DEVICE" --hidden 200,650,1500 --chunks 6 --repeats 3
fi
grep -E "^ +[0-9]+ " "$LOGS/trace.log" >> "$SUMMARY"

if [ "$HAVE_DUCKDB" = 1 ]; then
    if [ "$QUICK" = 1 ]; then
        step analysis 180 $PY bench/bench_analysis.py --quick --device "$DEVICE" --store /tmp/rnnvis-gpu-check-store
    else
        step analysis 160 $PY bench/bench_analysis.py --hidden 1500 --untrained --states hidden --device "$DEVICE" \
            --store /tmp/rnnvis-gpu-check-store
    fi
    grep -E "^(initialised|hidden)" "$LOGS/analysis.log" >> "$SUMMARY"
else
    say "== analysis: skipped (no duckdb: carry .whl, see the top of this script)"
fi

if [ "$QUICK" = 1 ]; then
    step train 120 $PY bench/gpu_train.py --quick --tokens 4000 --device "$DEVICE"
else
    step train 170 $PY bench/gpu_train.py --preset lstm-medium --epochs 3 --device "$DEVICE"
fi
grep -E "^train " "$LOGS/train.log" >> "$SUMMARY"

echo
echo "=== summary ($SUMMARY)"
cat "$SUMMARY"
