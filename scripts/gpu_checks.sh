#!/usr/bin/env bash
# The GPU checks, as ONE prepared command for the lent GPU machine (at most 9.5 minutes).
# Here: `bash scripts/gpu_wheels.sh` once; then call the device tool's run with
#   command: "bash scripts/gpu_checks.sh", carry: [".whl"], timeout_s: 600
# Results land in $OUT (tests.log, flow720.md, streams.md, flow360.md, engines.md); copy the figures into
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
# Step limits sum to 570 s, inside the call's 600: the figures that decide issues come first.
# CUDA parity of our Farneback (eager and compiled) and the CUDA engine paths (skip-marked on CPUs in CI).
run tests.log 170 python3 -m pytest -q -p no:cacheprovider tests/test_farneback.py tests/test_rolling_flow.py \
    tests/test_engine.py tests/test_train.py -k "cuda or gpu or parity"
# Farneback at the target: 16 batched 720p streams, eager and torch.compile'd (>= 500 pairs/s).
run flow720.md 140 python3 bench/flow.py --sizes 1280x720 --streams 16 --repeat 5 --compile --devices cuda
# Many cameras, one batched engine on the GPU (target: >= 16 streams at 25 maps/s each).
run streams.md 130 python3 bench/streams.py --device cuda --streams 1 16 --seconds 15 --model flowgrad_en
# Farneback: OpenCV CPU vs ours on the GPU at 640x360, one stream and 16 batched.
run flow360.md 50 python3 bench/flow.py --sizes 640x360 --streams 1 16 --repeat 5
# Engines: torch eager fp32 / fp16 on CUDA (onnxruntime-gpu and TensorRT cannot be carried here).
run engines.md 80 python3 bench/engines.py --models flowgrad_en rcgrad --no-compile --no-int8 --repeat 10
