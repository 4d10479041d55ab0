"""Flickr-SoundNet and VGG-SS evaluation: readers, ground-truth rules, the median
binarisation and the CLI, on tiny stand-in sets built here in each layout (generated
frames and audio, hand-written XML and JSON), checked against hand-worked numbers."""
import json
import wave

import cv2
import numpy as np
import pytest
import torch

from training import metrics
from training.benchmarks import BENCHMARKS
from training.data import DataConfig
from training.data.flickr import FlickrError, FlickrSoundNetEval, consensus_gt, parse_boxes
from training.data.flowcache import FlowCache
from training.data.stills import SKIP_NO_AUDIO, SKIP_NO_FRAME, SKIP_NO_NEXT, SKIP_UNREADABLE, middle_window
from training.data.vggss import SKIP_BAD_ENTRY, SKIP_DUPLICATE, VGGSSEval, union_gt
from training.evaluate import Localiser, evaluate_one, main

ANNOTATORS = [(0, 0, 128, 128), (0, 0, 128, 128), (128, 128, 256, 256)]  # two agree on the top-left


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    """(n,) or (n, channels) int16 samples as a PCM wav."""
    samples = np.asarray(samples, dtype=np.int16)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def flickr_xml(boxes) -> str:
    objects = "".join(f"<object><bbox><idx>{i}</idx><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                      f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bbox></object>" for i, b in enumerate(boxes))
    return f"<annotation><filename>x.jpg</filename>{objects}</annotation>"


def textured(size=(224, 224), seed=0) -> np.ndarray:
    """A smooth random BGR texture (Farneback needs structure to track)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size[1] // 8, size[0] // 8, 3)).astype(np.float32)
    return (cv2.resize(noise, size, interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def red_square(corner: str) -> np.ndarray:
    """224 x 224 black BGR frame with a red 112 x 112 quadrant ("tl" or "tr")."""
    frame = np.zeros((224, 224, 3), np.uint8)
    cols = slice(0, 112) if corner == "tl" else slice(112, 224)
    frame[:112, cols, 2] = 255
    return frame


def add_clip(root, clip, frame, following=None, audio_seconds=2.0, layout="flat"):
    """Frame (+ next frame) and a 16 kHz tone for ``clip`` in the stills layout."""
    if layout == "folder":
        (root / "frames" / clip).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "frames" / clip / "000.png"), frame)
        if following is not None:
            cv2.imwrite(str(root / "frames" / clip / "001.png"), following)
    else:
        (root / "frames").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "frames" / f"{clip}.png"), frame)
        if following is not None:
            (root / "next_frames").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "next_frames" / f"{clip}.png"), following)
    if audio_seconds:
        t = np.arange(int(16000 * audio_seconds)) / 16000
        write_wav(root / "audio" / f"{clip}.wav", 8000 * np.sin(2 * np.pi * 440 * t), 16000)


@pytest.fixture(scope="module")
def flickr_set(tmp_path_factory):
    """Two good clips (flat and per-clip-folder layouts) and one of each kind of bad entry."""
    root = tmp_path_factory.mktemp("flickr")
    (root / "Annotations").mkdir()
    for clip in ("good_tl", "good_tr", "no_audio", "no_next", "no_frame", "corrupt"):
        (root / "Annotations" / f"{clip}.xml").write_text(flickr_xml(ANNOTATORS))
    (root / "Annotations" / "bad_xml.xml").write_text("<annotation><object><bbox><idx>0</idx><xmin>3")
    add_clip(root, "good_tl", red_square("tl"), red_square("tl"))
    add_clip(root, "good_tr", red_square("tr"), red_square("tr"), layout="folder")
    add_clip(root, "no_audio", red_square("tl"), red_square("tl"), audio_seconds=0)
    add_clip(root, "no_next", red_square("tl"))
    add_clip(root, "corrupt", red_square("tl"), red_square("tl"))
    (root / "frames" / "corrupt.png").write_bytes(b"not an image at all")
    ids = ["good_tl", "good_tr", "no_audio", "no_next", "no_frame", "bad_xml", "no_xml", "corrupt"]
    (root / "flickr_test.csv").write_text("\n".join(ids) + "\n")
    return root


def test_flickr_consensus_gt_hand_worked(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(flickr_xml(ANNOTATORS))
    boxes = parse_boxes(xml)
    assert boxes == ANNOTATORS
    gt = consensus_gt(boxes)
    # 128 / 256 * 224 = 112: two annotators on the top-left quadrant -> 2 / 2 = 1, one on the
    # bottom-right -> 0.5, nothing elsewhere.
    assert gt.shape == (224, 224)
    assert (gt[:112, :112] == 1).all() and (gt[112:, 112:] == 0.5).all()
    assert gt[:112, 112:].sum() == 0 and gt[112:, :112].sum() == 0
    assert gt.sum() == pytest.approx(112 * 112 * 1.5)
    # int() truncation of each corner: 224 * 3 / 256 = 2.625 -> 2, 224 * 255 / 256 = 223.1 -> 223;
    # three identical boxes sum to 3, halved to 1.5 and capped at 1.
    gt = consensus_gt([(1, 3, 255, 100)] * 3)
    rows, cols = np.nonzero(gt)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 86, 0, 222)
    assert set(np.unique(gt)) == {0.0, 1.0}


def test_flickr_xml_children_by_position_and_errors(tmp_path):
    xml = tmp_path / "p.xml"
    xml.write_text("<a><o><bbox><i>0</i><q>10</q><q>20</q><q>30</q><q>40</q></bbox></o></a>")
    assert parse_boxes(xml) == [(10, 20, 30, 40)]
    for text, message in [("<a><o><bbox><i>0</i><xmin>1</xmin></bbox></o></a>", "four integer"),
                          ("<a/>", "no bbox"), ("<a><o", "not readable XML"),
                          ("<a><o><bbox><i/><x>9</x><y>1</y><x>5</x><y>2</y></bbox></o></a>", "0 <= min")]:
        xml.write_text(text)
        with pytest.raises(FlickrError, match=message):
            parse_boxes(xml)


def test_vggss_union_gt_hand_worked():
    gt = union_gt([[0.1, 0.2, 0.5, 0.6], [-0.1, 0.5, 0.3, 1.2]])
    # box 1: int(22.4)=22, int(44.8)=44, int(112)=112, int(134.4)=134 -> rows 44..133, cols 22..111
    # box 2: max(-0.1, 0)=0, int(112)=112, int(67.2)=67, int(268.8)=268 -> rows 112..223, cols 0..66
    assert gt[44, 22] == 1 and gt[133, 111] == 1 and gt[43, 22] == 0 and gt[44, 112] == 0
    assert gt[223, 0] == 1 and gt[223, 66] == 1 and gt[223, 67] == 0
    # 90 x 90 + 112 x 67 - overlap (rows 112..133, cols 22..66: 22 x 45), binary
    assert gt.sum() == 8100 + 7504 - 990 and set(np.unique(gt)) == {0.0, 1.0}


def test_median_binarisation_hand_worked():
    ramp = np.arange(16, dtype=float).reshape(4, 4)
    # normalised k / 15; sorted position int(16 / 2) = 8 holds 8/15; strictly above: 9..15
    assert metrics.binarise_median(ramp).sum() == 7
    assert (metrics.binarise_median(ramp)[2:, 1:] == 1).all()
    ties = np.array([0.0] * 10 + [1, 2, 3, 4, 5, 6]).reshape(4, 4)
    assert metrics.binarise_median(ties).sum() == 6  # threshold 0: the ten zeros drop out
    tops = np.array([1.0] * 10 + [0.0] * 6).reshape(4, 4)
    assert metrics.binarise_median(tops).sum() == 10  # threshold is the max: pixels at the max stay
    assert metrics.binarise_median(np.full((3, 3), 0.2)).sum() == 9  # constant map: all kept
    with pytest.raises(ValueError, match="NaN"):
        metrics.binarise_median(np.full((2, 2), np.nan))


def test_middle_window_as_hear_the_flow(tmp_path):
    rate = 16000
    ramp = (np.arange(5 * rate) % 20000).astype(np.int16)
    write_wav(tmp_path / "five.wav", np.stack([ramp, np.zeros_like(ramp)], axis=1), rate)
    config = DataConfig(audio_rate=rate, audio_seconds=3.0)
    got = middle_window(tmp_path / "five.wav", config)
    # mono = mean of the two channels; the middle 3 s start at 2.5 - 1.5 = 1 s
    np.testing.assert_array_equal(got, ramp[rate:4 * rate].astype(np.float32) / 32768 / 2)
    short = ramp[: rate * 2 // 5 * 2]  # 0.8 s, tiled to 3 s
    write_wav(tmp_path / "short.wav", short, rate)
    got = middle_window(tmp_path / "short.wav", config)
    np.testing.assert_array_equal(got, np.tile(short, 4)[: 3 * rate].astype(np.float32) / 32768)
    resampled = middle_window(tmp_path / "five.wav", DataConfig(audio_rate=22050, audio_seconds=3.0))
    assert resampled.shape == (66150,) and resampled.dtype == np.float32


def test_flickr_reader_counts_what_it_skips(flickr_set):
    data = FlickrSoundNetEval(flickr_set, DataConfig(audio_seconds=1.0))
    assert [e.clip for e in data.entries] == ["good_tl", "good_tr", "corrupt"]
    assert data.skipped == {SKIP_NO_AUDIO: 1, SKIP_NO_NEXT: 1, SKIP_NO_FRAME: 1,
                            "malformed annotation XML": 1, "listed clip without an annotation XML": 1}
    sample = data[1]  # per-clip folder layout
    assert sample.clip == "good_tr" and sample.frame.shape == (3, 224, 224) and sample.wave.shape == (16000,)
    assert sample.gt.sum() == pytest.approx(112 * 112 * 1.5)
    assert torch.equal(sample.frame[0, :112, 112:], torch.ones(112, 112))  # red top-right
    with pytest.raises(Exception, match="cannot read the image"):
        data[2]
    assert [e.clip for e in FlickrSoundNetEval(flickr_set, DataConfig(), ids=["good_tr"]).entries] == ["good_tr"]
    with pytest.raises(FlickrError, match="Annotations"):
        FlickrSoundNetEval(flickr_set / "frames", DataConfig())


def test_without_a_list_every_xml_is_a_clip(tmp_path):
    (tmp_path / "Annotations").mkdir()
    for clip in ("b", "a"):
        (tmp_path / "Annotations" / f"{clip}.xml").write_text(flickr_xml(ANNOTATORS))
        add_clip(tmp_path, clip, textured(), textured())
    assert [e.clip for e in FlickrSoundNetEval(tmp_path, DataConfig()).entries] == ["a", "b"]


def test_flow_runs_from_the_frame_to_the_next_in_frame_pixels(tmp_path):
    """A texture shifted 4 px right and 2 px down at 448 x 448: flow (+4, +2) in the frame's
    pixels on the 224 grid (values not rescaled by the resize); OpenCV's sign conventions."""
    frame = textured((448, 448), seed=3)
    shifted = np.roll(frame, (2, 4), axis=(0, 1))
    add_clip(tmp_path, "c", frame, shifted)
    (tmp_path / "vggss.json").write_text(json.dumps([{"file": "c", "class": "x", "bbox": [[0, 0, 1, 1]]}]))
    # Without stabilisation: a whole-frame shift is what compensation removes.
    flow = VGGSSEval(tmp_path, DataConfig(audio_seconds=1.0, stabilise=False))[0].flow
    inner = flow[:, 40:-40, 40:-40]
    assert inner[0].median().item() == pytest.approx(4.0, abs=0.2)
    assert inner[1].median().item() == pytest.approx(2.0, abs=0.2)


def test_hear_the_flow_flow_images_are_used_without_a_next_frame(tmp_path):
    add_clip(tmp_path, "c", textured(seed=1))
    for axis, value in (("flow_x", 10), ("flow_y", 0)):
        (tmp_path / "flow" / axis).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "flow" / axis / "c.jpg"), np.full((112, 112), value, np.uint8))
    (tmp_path / "vggss.json").write_text(json.dumps([{"file": "c", "class": "x", "bbox": [[0, 0, 1, 1]]}]))
    # Without stabilisation: a whole-frame shift is what compensation removes.
    flow = VGGSSEval(tmp_path, DataConfig(audio_seconds=1.0, stabilise=False))[0].flow
    assert torch.allclose(flow[0], torch.full((224, 224), 10.0)) and flow[1].abs().max() == 0


def test_vggss_reader_counts_malformed_entries(tmp_path):
    for clip in ("a", "b"):
        add_clip(tmp_path, clip, textured(seed=2), textured(seed=2))
    entries = [{"file": "a", "class": "car", "bbox": [[0.1, 0.1, 0.5, 0.5]]},
               {"file": "b", "class": "car", "bbox": "oops"},
               {"class": "car", "bbox": [[0, 0, 1, 1]]},
               {"file": "b", "class": "car", "bbox": [[0, 0, 1, float("nan")]]},
               {"file": "a", "class": "car", "bbox": [[0, 0, 1, 1]]},
               {"file": "gone", "class": "car", "bbox": [[0, 0, 1, 1]]}]
    (tmp_path / "vggss.json").write_text(json.dumps(entries))  # the NaN is written as NaN, read back as nan
    data = VGGSSEval(tmp_path, DataConfig(audio_seconds=1.0))
    assert [e.clip for e in data.entries] == ["a"]
    assert data.skipped == {SKIP_BAD_ENTRY: 3, SKIP_DUPLICATE: 1, SKIP_NO_FRAME: 1}
    assert data[0].gt.sum() == (112 - 22) ** 2


def test_evaluation_with_a_known_map_hand_worked(flickr_set, tmp_path):
    """Map = the frame's red channel: its median binarisation is the red quadrant exactly.

    good_tl: prediction = top-left quadrant = where two annotators agree (gt 1); gt sum is
    112^2 * 1.5 -> cIoU = 112^2 / (1.5 * 112^2) = 2/3. good_tr: no overlap, the quadrant is
    all gt == 0 -> 0 / (1.5 + 1) = 0. The corrupt clip is counted, not scored.
    """
    red = Localiser("red", 16000, 1.0, lambda batch, data, idx: (batch.frame[:, 0].numpy(), np.ones(len(idx))))
    cache = FlowCache(tmp_path / "cache")
    summary, cious, _ = evaluate_one(red, flickr_set, cache, 2, "median", False, BENCHMARKS["flickr"])
    assert cious == [pytest.approx(2 / 3), 0.0]
    assert summary["success@0.5"] == 0.5 and summary["n"] == 2
    # success: 1 at t = 0, 0.5 for t = 0.05 .. 0.65, 0 after: 0.05 * (0.75 + 12 * 0.5 + 0.25)
    assert summary["auc"] == pytest.approx(0.35)
    assert summary["skipped"][SKIP_UNREADABLE] == 1
    misses = cache.stats.misses
    evaluate_one(red, flickr_set, cache, 2, "median", False, BENCHMARKS["flickr"])
    assert cache.stats.misses == misses and cache.stats.hits >= 2  # flow computed once per clip


def test_cli_flickr_prints_ours_beside_the_papers(flickr_set, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--benchmark", "flickr", "--data", str(flickr_set), "--model", "flow_only",
                 "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Flickr-SoundNet test, maps binarised at their median" in captured.out
    assert "| flow_only |" in captured.out and "| HTF | Flickr 10k | 0.860 | 0.634 |" in captured.out
    assert "skipped inputs" in captured.err and SKIP_NO_AUDIO in captured.err
    result = json.loads(out.read_text())
    assert result["benchmark"] == "flickr" and result["map_threshold"] == "median"
    r = result["models"]["flow_only"]
    assert r["n"] == 2 and r["skipped"][SKIP_UNREADABLE] == 1 and r["skipped"][SKIP_NO_NEXT] == 1


def test_cli_vggss_with_hear_the_flow(tmp_path, capsys):
    """HTF at its own 22.05 kHz / 3 s from 16 kHz, 2 s clips (resampled, tiled)."""
    for clip in ("a", "b"):
        add_clip(tmp_path, clip, textured(seed=4), np.roll(textured(seed=4), 3, axis=1))
    (tmp_path / "vggss.json").write_text(json.dumps(
        [{"file": c, "class": "x", "bbox": [[0.2, 0.2, 0.6, 0.7]]} for c in ("a", "b")]))
    assert main(["--benchmark", "vggss", "--data", str(tmp_path), "--model", "htf", "--untrained",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "| HTF | VGGSound 144k | 0.394 | 0.400 |" in capsys.readouterr().out
    r = json.loads((tmp_path / "r.json").read_text())["models"]["htf"]
    assert r["n"] == 2 and all(0 <= c <= 1 for c in r["cious"])


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "flickr"], "Annotations"),
    (["--benchmark", "vggss"], "vggss.json"),
    (["--benchmark", "flickr", "--model", "detector:x.onnx"], "detector baseline"),
])
def test_cli_bad_sets_are_one_line_exit_2(tmp_path, args, message, capsys):
    argv = args + ["--data", str(tmp_path)] + ([] if "--model" in args else ["--model", "flow_only"])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
