"""ONNX export (export/onnx.py): parity with torch under onnxruntime, TensorRT-parsable ops,
metadata, the export-friendly spectrograms, loader errors and the CLI's errors."""
import json
import warnings

import numpy as np
import pytest
import torch

import onnx  # noqa: E402

from helpers import make_inputs, small_config  # noqa: E402
from export.onnx import export_onnx, load_session, main  # noqa: E402
from export.quantize import calibration_feeds  # noqa: E402
from flowgrad import audio, checkpoint, models  # noqa: E402
from flowgrad.assets import DEMO_CLIP  # noqa: E402
from flowgrad.onnx_meta import OnnxFileError  # noqa: E402

# Operators the TensorRT ONNX parser supports, written from onnx-tensorrt's
# docs/operators.md for TensorRT 10.x (release/10.x branch). Only operators known to be
# supported are listed; DFT / STFT / window / MelWeightMatrix are NOT supported there.
# Per-op restrictions still apply (e.g. TopK needs K <= 3840; Pad reflect needs TRT >= 8.5).
TRT10_SUPPORTED_OPS = frozenset("""
    Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant
    ConstantOfShape Conv ConvTranspose Cos Div Einsum Equal Erf Exp Expand Flatten Floor Gather
    GatherElements Gemm GlobalAveragePool GlobalMaxPool Greater Identity LeakyRelu Less Log
    MatMul Max MaxPool Min Mul Neg Not Pad Pow Range Reciprocal ReduceL2 ReduceMax ReduceMean
    ReduceMin ReduceSum Relu Reshape Resize Round ScatterND Shape Sigmoid Sin Slice Softmax
    Split Sqrt Squeeze Sub Tanh Tile TopK Transpose Unsqueeze Where
""".split())

TOL = 1e-4


@pytest.fixture(scope="module")
def exported(onnx_exports):
    """{name: (model, written paths)} from the shared session export."""
    return {name: (model, paths) for name, (model, _, paths) in onnx_exports.items()}


def _run_frame(session, model, frame, flow, emb):
    """(heatmap, score) of the frame graph."""
    feeds = {"frame": frame.numpy(), "flow": flow.numpy()}
    if model.uses_audio:
        feeds["audio_embedding"] = emb.numpy()
    return tuple(session.run(["heatmap", "score"], feeds))


@pytest.mark.parametrize("name", models.names())
def test_onnxruntime_matches_torch_dynamic_batch(exported, name):
    model, paths = exported[name]
    assert [p.name for p in paths] == (
        [f"{name}.frame.onnx", f"{name}.audio.onnx"] if model.uses_audio else [f"{name}.frame.onnx"]
    )
    frame_sess, meta = load_session(paths[0])
    assert [i.name for i in frame_sess.get_inputs()] == (
        ["frame", "flow", "audio_embedding"] if model.uses_audio else ["frame", "flow"]
    )
    audio_sess = load_session(paths[1])[0] if model.uses_audio else None
    for batch in (1, 4):
        frame, flow, wave = make_inputs(model, batch, seed=batch)
        with torch.no_grad():
            emb = model.embed_audio(wave)
            ref, ref_score = model(frame, flow, emb)
        if audio_sess is not None:
            got_emb = audio_sess.run(None, {"wave": wave.numpy()})[0]
            assert got_emb.shape == tuple(emb.shape)
            assert np.abs(got_emb - emb.numpy()).max() <= TOL
        got, got_score = _run_frame(frame_sess, model, frame, flow, emb)
        assert got.shape == (batch, *model.map_size)
        assert np.abs(got - ref.numpy()).max() <= TOL
        assert got_score.shape == (batch,) and got_score.dtype == np.float32
        assert np.abs(got_score - ref_score.numpy()).max() <= TOL


@pytest.mark.parametrize("name", models.names())
def test_ops_are_tensorrt_parsable_and_metadata(exported, name):
    model, paths = exported[name]
    for path, role in zip(paths, ("frame", "audio")):
        proto = onnx.load(str(path))
        ops = {n.op_type for n in proto.graph.node}
        assert ops <= TRT10_SUPPORTED_OPS, f"{path.name}: not TensorRT-parsable: {sorted(ops - TRT10_SUPPORTED_OPS)}"
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
        assert meta["format"] == "flowgrad-onnx" and meta["version"] == 1
        assert meta["model"] == name and meta["role"] == role
        assert meta["config"] == json.loads(json.dumps(dict(model.config.__dict__)))
        assert meta["frame_normalisation"] == "RGB in [0,1], colour order RGB"
        assert meta["flow_units"] == "pixels of the full camera frame"
        assert meta["audio_rate_hz"] == model.audio_rate
        assert meta["audio_window_s"] == model.audio_seconds
        if role == "frame":
            assert [o.name for o in proto.graph.output] == ["heatmap", "score"]
            assert meta["outputs"]["score"]["shape"] == ["batch"]
            assert meta["score_calibrated"] is model.score_is_calibrated
        assert all(v["dtype"] == "float32" and v["shape"][0] == "batch" for v in meta["inputs"].values())
        if role == "audio":
            assert meta["inputs"]["wave"]["shape"] == ["batch", round(model.audio_rate * model.audio_seconds)]


def test_reference_mode_median_clean_pixel_agreement(tmp_path):
    """rcgrad reference=True ends in a median clean (a hard step): compare the fraction of
    differing pixels (REFERENCE section 7), with the embedding from the exported audio graph."""
    torch.manual_seed(0)
    model = models.create("rcgrad", width=0.25, reference=True)
    frame_path, audio_path = export_onnx(model, tmp_path / "ref")
    frame, flow, wave = make_inputs(model, 4, seed=3)
    with torch.no_grad():
        emb = model.embed_audio(wave)
        ref = model(frame, flow, emb)[0].numpy()
    got_emb = load_session(audio_path)[0].run(None, {"wave": wave.numpy()})[0]
    assert np.abs(got_emb - emb.numpy()).max() <= TOL  # batch-wide standardisation, input-stat BN
    got = _run_frame(load_session(frame_path)[0], model, frame, flow, emb)[0]
    assert np.mean(np.abs(got - ref) > TOL) < 1e-3
    ops = {n.op_type for p in (frame_path, audio_path) for n in onnx.load(str(p)).graph.node}
    assert ops <= TRT10_SUPPORTED_OPS, sorted(ops - TRT10_SUPPORTED_OPS)


def test_fixed_batch_export(tmp_path):
    torch.manual_seed(0)
    model = models.create("flowgrad_h", width=0.25)
    frame_path, _ = export_onnx(model, tmp_path / "fixed", batch=2)
    sess, meta = load_session(frame_path)
    assert [i.shape[0] for i in sess.get_inputs()] == [2, 2, 2]
    assert meta["batch"] == 2


def _rel_err(a, b):
    return float((a - b).norm() / b.norm())


def test_power_spectrogram_dft_matches_stft():
    g = torch.Generator().manual_seed(0)
    for n in (16000 * 5, 22050, 1000):
        wave = torch.randn(2, n, generator=g) * 0.1
        ref = audio.power_spectrogram(wave)
        got = audio.power_spectrogram_dft(wave)
        assert got.shape == ref.shape
        assert _rel_err(got, ref) < 1e-4


def test_rcgrad_and_htf_spectrogram_dft_match():
    g = torch.Generator().manual_seed(1)
    wave = torch.randn(2, 16000 * 5, generator=g) * 0.1
    for stats in ("clip", "batch"):
        ref = audio.rcgrad_spectrogram(wave, stats=stats)
        got = audio.rcgrad_spectrogram_dft(wave, stats=stats)
        assert got.shape == ref.shape and _rel_err(got, ref) < 1e-4
    wave = torch.randn(2, 22050 * 3, generator=g) * 0.1 + 0.05  # an offset exercises the detrend
    ref = audio.htf_spectrogram(wave)
    got = audio.htf_spectrogram_dft(wave)
    assert got.shape == ref.shape == (2, 1, 257, 276)
    assert (got - ref).abs().max() < 1e-4


def test_truncated_onnx_file_gives_clear_error(exported, tmp_path):
    _, paths = exported["rcgrad"]
    data = paths[0].read_bytes()
    bad = tmp_path / "truncated.frame.onnx"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(OnnxFileError, match="truncated.frame.onnx"):
        load_session(bad)
    with pytest.raises(OnnxFileError, match="missing.onnx"):
        load_session(tmp_path / "missing.onnx")


def test_cli_checkpoint_and_errors(tmp_path, capsys):
    torch.manual_seed(0)
    model = models.create("flow_only")
    ckpt = tmp_path / "fo.ckpt"
    checkpoint.save(ckpt, model)
    assert main([str(ckpt), "-o", str(tmp_path / "out"), "--batch", "3"]) == 0
    assert (tmp_path / "out.frame.onnx").exists() and not (tmp_path / "out.audio.onnx").exists()
    capsys.readouterr()

    assert main(["no_such_model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_model" in err

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(ckpt.read_bytes()[:100])
    assert main([str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.ckpt" in err

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("MODEL", "--out", "--opset", "--batch", "--size"):
        assert option in text


def test_size_option_is_width_by_height(tmp_path, capsys):
    """--size 256x192 (width x height, like every size option): a frame input of 192 rows and
    256 columns, in the graph and in its metadata; the API takes the same as size_hw=(192, 256)."""
    from flowgrad import engine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model was defined at 224x224"
        assert main(["flow_only", "--size", "256x192", "-o", str(tmp_path / "cli")]) == 0
        export_onnx(models.create("flow_only"), tmp_path / "api", size_hw=(192, 256))
    capsys.readouterr()
    for prefix in ("cli", "api"):
        graph = onnx.load(str(tmp_path / f"{prefix}.frame.onnx"))
        dims = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
                for v in [*graph.graph.input, *graph.graph.output]}
        assert dims["frame"] == ["batch", 3, 192, 256] and dims["flow"] == ["batch", 2, 192, 256]
        assert dims["heatmap"] == ["batch", 192, 256]
        assert engine.open(tmp_path / prefix).input_size == (192, 256)


# --------------------------------------------------------------------------- int8 (export.quantize)


@pytest.mark.parametrize("name", models.names())
def test_int8_frame_graph_tracks_torch(name, tmp_path):
    """Quantised convolutions move the maps a little, never their shape: per map the
    correlation with torch stays >= 0.98 and the mean |difference| <= 0.03 (measured at test
    size: correlation >= 0.9987, mean <= 0.01); a broken scale or zero point drops the
    correlation towards 0. The graph is QDQ around every Conv, metadata kept + precision."""
    torch.manual_seed(0)
    model = models.create(name, **small_config(name)).eval()
    tests = calibration_feeds(model, DEMO_CLIP, 7)[1::2]  # other frames than the calibration ones
    frame = np.concatenate([f["frame"] for f in tests])
    flow = np.concatenate([f["flow"] for f in tests])
    emb = np.concatenate([f["audio_embedding"] for f in tests]) if model.uses_audio else np.zeros((3, 0), np.float32)
    if model.uses_audio:  # a steep calibration centred on these frames: score errors are not hidden in a flat sigmoid
        with torch.no_grad():
            evidence = model.sounding_evidence(torch.from_numpy(frame), torch.from_numpy(flow), torch.from_numpy(emb))
        model.set_score_calibration(20.0, -20.0 * float(evidence.mean()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = export_onnx(model, tmp_path / name, int8_video=DEMO_CLIP, calibration_frames=4)
    proto = onnx.load(str(paths[0]))
    ops = [n.op_type for n in proto.graph.node]
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    if name == "flow_only":  # no convolutions: kept in float32, said so
        assert "QuantizeLinear" not in ops and "precision" not in meta
        assert any("no convolutions" in str(w.message) for w in caught)
    else:
        assert ops.count("DequantizeLinear") >= 2 * ops.count("Conv")  # weight and activation of each
        assert "QuantizeLinear" in ops
        assert meta["precision"] == "int8" and meta["calibration"] == "4 frames of street.mp4"
    assert meta["model"] == name and meta["role"] == "frame"
    if model.uses_audio:
        assert "precision" not in {p.key for p in onnx.load(str(paths[1])).metadata_props}  # audio stays float32
    assert meta["score_calibrated"] is True
    with torch.no_grad():
        ref, ref_score = (t.numpy() for t in model(torch.from_numpy(frame), torch.from_numpy(flow),
                                                   torch.from_numpy(emb)))
    got, got_score = _run_frame(load_session(paths[0])[0], model, torch.from_numpy(frame), torch.from_numpy(flow),
                                torch.from_numpy(emb))
    assert got.shape == ref.shape
    assert np.abs(got - ref).mean() <= 0.03
    assert got_score.shape == ref_score.shape and np.abs(got_score - ref_score).max() <= 0.03
    for g, r in zip(got, ref):
        assert np.corrcoef(g.ravel(), r.ravel())[0, 1] >= 0.98


def test_int8_cli_default_prefix_and_bad_video(tmp_path, capsys):
    ckpt = tmp_path / "rc.ckpt"
    torch.manual_seed(0)
    checkpoint.save(ckpt, models.create("rcgrad", width=0.125).eval())
    assert main([str(ckpt), "--int8", "--calibration-frames", "2"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "rc.int8.frame.onnx"), str(tmp_path / "rc.int8.audio.onnx")]
    from flowgrad import engine
    assert engine.open(tmp_path / "rc.int8").precision == "int8"
    assert engine.open(tmp_path / "rc.int8.frame.onnx").name == "rcgrad"
    # Calibration frames follow --size (they are made at the exported input size).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model was defined at 224x224"
        assert main([str(ckpt), "--int8", "--size", "256x256", "--calibration-frames", "2",
                     "-o", str(tmp_path / "big")]) == 0
    assert engine.open(tmp_path / "big").input_size == (256, 256)
    capsys.readouterr()
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"garbage")
    before = (tmp_path / "rc.int8.frame.onnx").stat().st_mtime_ns
    assert main([str(ckpt), "--int8", "--calibrate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not_a_video.mp4" in err[0]
    assert (tmp_path / "rc.int8.frame.onnx").stat().st_mtime_ns == before  # the earlier export is untouched


def test_doa_suffix_round_trips_through_the_metadata(exported, tmp_path, capsys):
    """MODEL+doa exports the same graphs with metadata doa true: the engine wants the direction;
    a plain export, one from before the entry, and torch engines do not."""
    import onnx as onnx_lib

    from flowgrad import engine

    ckpt = tmp_path / "fo.ckpt"
    checkpoint.save(ckpt, models.create("flow_only"))
    assert main([f"{ckpt}+doa"]) == 0  # the default prefix comes from the model, not the suffix
    assert capsys.readouterr().out.split() == [str(tmp_path / "fo.frame.onnx")]
    eng = engine.open(tmp_path / "fo")
    assert eng.wants_doa is True and load_session(tmp_path / "fo.frame.onnx")[1]["doa"] is True
    assert main([str(ckpt), "-o", str(tmp_path / "plain")]) == 0
    assert engine.open(tmp_path / "plain").wants_doa is False
    assert engine.open(str(ckpt)).wants_doa is False and engine.Engine.wants_doa is False
    # an export from before the entry: no "doa" in its metadata
    _, paths = exported["rcgrad"]
    proto = onnx_lib.load(str(paths[0]))
    kept = [p for p in proto.metadata_props if p.key != "doa"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    old = tmp_path / "old"
    onnx_lib.save(proto, str(old) + ".frame.onnx")
    (tmp_path / "old.audio.onnx").write_bytes(paths[1].read_bytes())
    assert engine.open(old).wants_doa is False
    # the motion memory is not an export's to record: one line, nothing written
    capsys.readouterr()
    assert main([f"{ckpt}+memory", "-o", str(tmp_path / "mem")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "+memory" in err[0] and not list(tmp_path.glob("mem*"))
