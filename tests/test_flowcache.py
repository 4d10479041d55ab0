"""training.data.flowcache: parity with on-the-fly flow, invalidation, corrupt entries, the CLI."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from flowgrad import models
from training.data import DataConfig, UrbansasEval, UrbansasWindows
from training.data import flowcache
from training.data.flowcache import FlowCache, main
from training.data.media import probe_video
from training.data.windows import compute_flow, config_fingerprint

# the tiny-fixture writers live with the dataset tests
from helpers import SECONDS, moving_square_frames, write_video

CFG = DataConfig()


def assert_within_half_step(cached, fresh):
    """Every cached value is the float16 nearest the fresh one: off by at most half its float16 step."""
    half_step = np.spacing(np.abs(cached.numpy()).astype(np.float16)).astype(np.float32) / 2
    err = (cached - fresh).abs().numpy()
    assert (err <= half_step).all(), f"max excess {float((err - half_step).max())}"


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, moving_square_frames(8, 2, int(SECONDS * 8)), 8)
    return path


def test_cached_flow_matches_fresh_flow(tmp_path, clip):
    video = probe_video(clip)
    cache = FlowCache(tmp_path / "cache")
    frame_fresh, fresh, camera_fresh = compute_flow(video, 2.0, CFG)
    frame_miss, miss, camera_miss = cache.flow(video, 2.0, CFG)
    frame_hit, hit, camera_hit = cache.flow(video, 2.0, CFG)
    assert (cache.stats.misses, cache.stats.hits, cache.stats.corrupt) == (1, 1, 0)
    assert float(fresh.abs().max()) > 1.0  # the fixture really moves
    assert_within_half_step(hit, fresh)
    assert torch.equal(hit, miss)  # a miss returns what later epochs will read
    assert np.array_equal(frame_hit, frame_fresh) and np.array_equal(frame_miss, frame_fresh)
    # The camera's displacement (a still camera: at most a few hundredths of a pixel) is kept as float32.
    assert camera_miss == camera_hit == pytest.approx(camera_fresh, rel=1e-6) and max(map(abs, camera_fresh)) < 0.1
    # a continuous tiny model (flow magnitude map): the maps agree to < 1e-3
    model = models.create("flow_only")
    frame = torch.rand(1, 3, 224, 224)
    emb = model.embed_audio(torch.zeros(1, 80000))
    with torch.no_grad():
        diff = (model(frame, fresh[None], emb)[0] - model(frame, hit[None], emb)[0]).abs().max()
    assert float(diff) < 1e-3


def test_entry_is_a_plain_npz_of_float16_flow_and_float32_camera(tmp_path, clip):
    video = probe_video(clip)
    cache = FlowCache(tmp_path / "cache")
    flow = cache.flow(video, 1.0, CFG).flow
    with np.load(cache.entry_path(video, 1.0, CFG), allow_pickle=False) as entry:
        stored, camera = entry["flow"], entry["camera"]
    assert stored.dtype == np.float16 and stored.shape == (2, 224, 224)
    np.testing.assert_array_equal(stored.astype(np.float32), flow.numpy())
    assert camera.dtype == np.float32 and camera.shape == (2,) and np.isfinite(camera).all()


def test_a_camera_the_stabiliser_could_not_fit_is_kept_as_unknown(tmp_path, clip):
    from training.data.windows import FlowPair

    video = probe_video(clip)
    cache = FlowCache(tmp_path / "cache")
    flow = torch.ones(2, 224, 224)
    for camera in (None, (1.25, -3.5)):
        pair = cache.flow(video, 1.0 if camera is None else 2.0, CFG, lambda v, t, c: FlowPair(None, flow, camera))
        assert pair.camera == camera and torch.equal(pair.flow, flow)
    assert cache.flow_field(video, 1.0, CFG).camera is None and cache.stats.hits == 1


def test_changed_clip_or_settings_are_new_entries(tmp_path, clip):
    video = probe_video(clip)
    cache = FlowCache(tmp_path / "cache")
    old = cache.flow(video, 2.0, CFG).flow
    other = DataConfig(flow_work_hw=(64, 96))
    assert cache.entry_path(video, 2.0, other) != cache.entry_path(video, 2.0, CFG)
    assert cache.entry_path(video, 2.5, CFG) != cache.entry_path(video, 2.0, CFG)
    # rewrite the clip: the square now moves left; the old entry must not be used
    write_video(clip, moving_square_frames(8, 2, int(SECONDS * 8))[::-1], 8)
    st = os.stat(clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    video = probe_video(clip)
    new = cache.flow(video, 2.0, CFG).flow
    fresh = compute_flow(video, 2.0, CFG).flow
    assert cache.stats.misses == 2 and cache.stats.hits == 0
    assert_within_half_step(new, fresh)
    assert float((new - old).abs().max()) > 1.0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "a plain npy", "no camera",
                                    "infinite camera"])
def test_corrupt_entry_is_recomputed_and_counted(tmp_path, clip, damage):
    video = probe_video(clip)
    cache = FlowCache(tmp_path / "cache")
    good = cache.flow(video, 2.0, CFG).flow
    path = cache.entry_path(video, 2.0, CFG)
    if damage == "garbage":
        path.write_bytes(b"\x93NUMPY garbage")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "wrong shape":
        np.savez(path, flow=np.zeros((2, 10, 10), np.float16), camera=np.zeros(2, np.float32))
    elif damage == "a plain npy":  # the format before the camera was kept
        with open(path, "wb") as f:
            np.save(f, np.zeros((2, 224, 224), np.float16))
    elif damage == "no camera":
        np.savez(path, flow=np.zeros((2, 224, 224), np.float16))
    else:
        np.savez(path, flow=np.zeros((2, 224, 224), np.float16), camera=np.array([np.inf, 0], np.float32))
    again = cache.flow(video, 2.0, CFG).flow
    assert cache.stats.corrupt == 1 and cache.stats.misses == 2
    assert torch.equal(again, good)
    third = cache.flow(video, 2.0, CFG).flow  # rewritten: a clean hit now
    assert cache.stats.hits == 1 and cache.stats.corrupt == 1 and torch.equal(third, good)


def test_cache_keys_keep_the_width_first_work_size():
    """The key still holds the work size as [W, H] under its old name, so it is never read for the
    transposed size."""
    assert json.dumps(config_fingerprint(DataConfig(flow_work_hw=(64, 96)))["flow_work_size"]) == "[96, 64]"
    assert config_fingerprint(CFG)["flow_work_size"] is None


def test_dataset_with_cache_equals_without(tmp_path, urbansas):
    cache = FlowCache(tmp_path / "cache")
    plain, cached = UrbansasWindows(urbansas, CFG), UrbansasWindows(urbansas, CFG, cache=cache)
    a, b = plain[3], cached[3]
    assert_within_half_step(b.flow, a.flow)
    assert torch.equal(a.frame, b.frame) and torch.equal(a.wave, b.wave) and (a.clip, a.t) == (b.clip, b.t)


def test_cli_precomputes_every_pair(tmp_path, urbansas, capsys):
    root = tmp_path / "u"
    shutil.copytree(urbansas, root)
    assert main(["--data", str(root)]) == 0
    entries = list((root / "flowcache").rglob("*.npz"))
    n = len(UrbansasWindows(root, CFG)) + len(UrbansasEval(root, CFG))
    # eval times 1.5 and 2.5 coincide with window centres of c1: one entry each
    assert len(entries) == n - 2
    out = capsys.readouterr().out
    assert f"items {n}" in out and f"misses {n - 2}" in out
    assert main(["--data", str(root)]) == 0
    assert f"hits {n}, misses 0" in capsys.readouterr().out
    cache = FlowCache(root / "flowcache")
    UrbansasEval(root, CFG, cache=cache)[2]
    assert (cache.stats.hits, cache.stats.misses) == (1, 0)


def test_cli_names_entries_of_an_older_format_left_behind(tmp_path, urbansas, capsys):
    root = tmp_path / "u"
    shutil.copytree(urbansas, root)
    assert main(["--data", str(root)]) == 0
    assert "older format" not in capsys.readouterr().out
    old = root / "flowcache" / "ab" / ("ab" + "0" * 62 + ".npy")  # a format-2 entry
    old.parent.mkdir(parents=True, exist_ok=True)
    with open(old, "wb") as f:
        np.save(f, np.zeros((2, 224, 224), np.float16))
    assert main(["--data", str(root)]) == 0
    assert "1 entry of an older format" in capsys.readouterr().out and old.exists()  # named, not deleted


def test_cli_bad_arguments(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--work-size", "640by360"])
    assert "640by360" in capsys.readouterr().err


def test_cli_work_size_is_width_by_height(urbansas, monkeypatch):
    seen = []
    monkeypatch.setattr(flowcache, "precompute", lambda datasets, cache, workers: seen.extend(datasets) or {"failed": 0})
    assert main(["--data", str(urbansas), "--work-size", "96x64"]) == 0
    assert seen and {d.config.flow_work_hw for d in seen} == {(64, 96)}


def test_stabilisation_is_part_of_the_key_so_old_uncompensated_caches_are_not_reused(tmp_path, clip):
    import hashlib
    video = probe_video(clip)
    cache = FlowCache(tmp_path / "cache")
    on, off = cache.entry_path(video, 2.0, DataConfig()), cache.entry_path(video, 2.0, DataConfig(stabilise=False))
    assert on != off
    # The key an entry had before stabilisation existed (same fields, without it).
    old = {k: v for k, v in config_fingerprint(CFG).items() if k not in ("stabilise", "motion_memory_s")}
    stamp = flowcache._stamp(video.path)
    payload = {"format": flowcache.FORMAT_VERSION, "dtype": "float16", "clip": stamp[0], "size": stamp[1],
               "mtime_ns": stamp[2], "t": 2.0, **old}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert {on, off}.isdisjoint({cache.directory / key[:2] / f"{key}.npy"})
