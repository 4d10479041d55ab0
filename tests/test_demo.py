"""The README's main job: the demo on the bundled scene writes a sensible overlay."""
import subprocess
import sys

import cv2
import numpy as np

from flowgrad import models
from realtime import demo
from realtime.picture import band_height


def test_demo_flow_only_finds_the_moving_bus(tmp_path):
    f0, heat, _ = demo.localise_scene(models.create("flow_only"), demo.DEMO_DIR)
    heat = cv2.resize(heat, (640, 360), interpolation=cv2.INTER_LINEAR)
    hot = heat >= 0.5
    ys, xs = np.nonzero(hot)
    assert hot.sum() > 500
    # the bus (x 300..526, y 190..318 of the 640x360 frame) moves; the parked car (x 60..200) does not
    assert ((xs >= 280) & (xs <= 546) & (ys >= 170) & (ys <= 340)).mean() > 0.95
    assert heat[220:300, 60:200].max() < 0.05
    out = demo.run("flow_only", demo.DEMO_DIR, tmp_path / "heat.png")
    assert cv2.imread(str(out)).shape == (360 + band_height(3 * 640), 3 * 640, 3)  # with the caption band


def test_demo_cli_bad_input_exits_2(tmp_path):
    (tmp_path / "frame0.png").write_bytes(b"not a png")
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.demo", "--data", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "frame0.png" in proc.stderr


def test_demo_cli_bad_checkpoint_exits_2(tmp_path):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"\x00" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.demo", "--model", str(bad), "--out", str(tmp_path / "o.png")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2 and "model.ckpt" in proc.stderr
    assert "Traceback" not in proc.stderr
