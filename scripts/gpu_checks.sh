#!/usr/bin/env bash
# The GPU checks, as ONE prepared command for the lent GPU machine (about 6 minutes).
# Here: `bash scripts/gpu_wheels.sh` once; then call the device tool's run with
#   command: "bash scripts/gpu_checks.sh", carry: [".whl"], timeout_s: 600
# Results land in $OUT (tests.log, flow.md, engines.md, streams.md); copy the figures into
# docs/BENCHMARKS.md with the machine and date. Runs from the repository root, no install:
# the machine's own torch (CUDA) with the project on PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PWD" || { echo "gpu_checks: carry .whl (bash scripts/gpu_wheels.sh)"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$out/gpu.txt"
run() {  # run NAME SECONDS CMD...: one step, its own time limit, output kept whatever happens
    local name=$1 limit=$2; shift 2
    echo "== $name"
    timeout "$limit" "$@" > "$out/$name" 2>&1; echo "exit $? after $SECONDS s" | tee -a "$out/$name"
    tail -n 25 "$out/$name"
}
# CUDA parity of our Farneback and the CUDA engine paths (skip-marked on CPUs in CI).
run tests.log 150 python3 -m pytest -q -p no:cacheprovider tests/test_farneback.py tests/test_rolling_flow.py \
    tests/test_engine.py tests/test_train.py -k "cuda or gpu or parity"
# Farneback: OpenCV CPU vs ours on the GPU, one stream and 16 batched (target: >= 500 pairs/s at 720p).
run flow.md 120 python3 bench/flow.py --sizes 640x360 1280x720 --streams 1 16 --repeat 5
# Engines: torch eager fp32 / fp16 on CUDA (onnxruntime-gpu and TensorRT cannot be carried here).
run engines.md 120 python3 bench/engines.py --models flowgrad_en rcgrad --no-compile --no-int8 --repeat 10
# Many cameras, one batched engine on the GPU (target: >= 16 streams at 25 maps/s each).
run streams.md 150 python3 bench/streams.py --device cuda --streams 1 16 --seconds 15 --model flowgrad_en
