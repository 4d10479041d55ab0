"""Training data holding NaN or infinity (a float WAV, a damaged flow cache entry): the window
is passed over for one of another clip, counted under its own reason, and the count travels
with the sample so that it reaches the training loop from DataLoader workers too."""
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from helpers import SECONDS, clicks, moving_square_frames, write_video, write_wav
from training.data import DataConfig, DataError, UrbansasWindows, collate
from training.data.media import NonFiniteError, probe_audio, read_audio
from training.data.windows import SKIP_NON_FINITE, WindowDataset

NAN_AT = 3.0  # seconds: c1's audio is NaN from here for 0.1 s


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Two clips of 6 s at 8 fps: c1 with a float32 WAV holding NaN, c4 with clean audio."""
    root = tmp_path_factory.mktemp("nan_set")
    n = int(SECONDS * 8)
    write_video(root / "video/video_8fps/c1.mp4", moving_square_frames(8, 2, n), 8)
    write_video(root / "video/video_8fps/c4.mp4", moving_square_frames(8, 1, n), 8)
    audio = clicks(16000)[0]
    audio[int(NAN_AT * 16000): int((NAN_AT + 0.1) * 16000)] = np.nan
    (root / "audio").mkdir()
    wavfile.write(root / "audio/c1.wav", 16000, audio)
    write_wav(root / "audio/c4.wav", clicks(16000), 16000)
    return root


def _windows(root, **config):
    ds = UrbansasWindows(root, DataConfig(audio_seconds=1.0, **config))
    clips = [ds.sources[item.source].clip for item in ds.items]
    return ds, clips


def test_read_audio_says_where_the_nan_is(root):
    info = probe_audio(root / "audio/c1.wav")
    assert read_audio(info, 0, 16000).shape == (1, 16000)  # before the NaN: fine
    with pytest.raises(NonFiniteError, match=r"c1\.wav: audio holds NaN or infinite samples between 2\.500 s"):
        read_audio(info, 40000, 16000)


def test_a_nan_window_is_replaced_by_another_clip_and_counted(root):
    ds, clips = _windows(root)
    bad = next(i for i, item in enumerate(ds.items) if clips[i] == "c1" and item.t == 3.5)
    first_c4 = clips.index("c4")
    sample = ds[bad]
    assert (sample.clip, sample.t) == ("c4", ds.items[first_c4].t)
    assert sample.skipped == (SKIP_NON_FINITE,)
    assert torch.isfinite(sample.wave).all()
    assert ds.skipped == {SKIP_NON_FINITE: 1}
    good = ds[0]  # c1 at 0.5 s: its 1 s window is clean
    assert (good.clip, good.skipped) == ("c1", ())
    batch = collate([sample, good, ds[bad]])
    assert batch.skipped == {SKIP_NON_FINITE: 2}
    assert collate([good, good]).skipped == {}


def test_substitutes_come_from_the_subset(root):
    ds, clips = _windows(root)
    bad = [i for i, item in enumerate(ds.items) if clips[i] == "c1" and item.t == 3.5]
    c1 = [i for i, c in enumerate(clips) if c == "c1"]
    sample = ds.subset(c1)[c1.index(bad[0])]  # no other clip in the subset: the next window of c1
    assert sample.clip == "c1" and sample.skipped == (SKIP_NON_FINITE,)
    with pytest.raises(DataError, match="3 substitutes from other clips could not be read"):
        ds.subset(bad)[0]


class _NanCache:
    """A flow cache whose entries for ``clip`` hold NaN (a damaged file)."""

    def __init__(self, clip):
        self.clip = clip

    def flow(self, video, t, config, compute):
        pair = compute(video, t, config)
        if video.path.stem != self.clip:
            return pair
        flow = pair.flow.clone()
        flow[0, 0, 0] = float("inf")
        return pair._replace(flow=flow)


def test_a_non_finite_flow_from_the_cache_is_passed_over(root):
    ds, clips = _windows(root)
    cached = WindowDataset(ds.sources, ds.items, ds.config, cache=_NanCache("c4"))
    sample = cached[clips.index("c4")]
    assert sample.clip == "c1" and sample.skipped == (SKIP_NON_FINITE,)
    strict = WindowDataset(ds.sources, ds.items, ds.config, cache=_NanCache("c4"), substitute=False)
    with pytest.raises(DataError, match="c4: the flow at 0.500 s holds NaN or infinite values"):
        strict[clips.index("c4")]
