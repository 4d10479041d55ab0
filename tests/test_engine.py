"""flowgrad.engine: the same embeddings and heatmaps from a checkpoint (torch) and its
ONNX export (onnxruntime), for every registry model; path resolution and errors."""
import numpy as np
import pytest
import torch

from helpers import make_inputs, small_config, tamper
from export.onnx import export_onnx
from flowgrad import checkpoint, engine, models
from flowgrad.onnx_meta import OnnxFileError

TOL = 1e-4


@pytest.fixture(scope="module")
def saved(onnx_exports):
    """Per model (test size): the torch model, its checkpoint and its ONNX prefix (dynamic batch)."""
    result = {}
    for name, (model, prefix, _) in onnx_exports.items():
        ckpt = prefix.with_suffix(".ckpt")
        checkpoint.save(ckpt, model)
        result[name] = (model, ckpt, prefix)
    return result


def _inputs(model, batch, seed=0):
    frame, flow, wave = make_inputs(model, batch, seed)
    return frame.numpy(), flow.numpy(), wave.numpy()


@pytest.mark.parametrize("name", models.names())
def test_checkpoint_and_onnx_agree(saved, name):
    model, ckpt, prefix = saved[name]
    eng_t = engine.open(ckpt)
    suffix = ".audio.onnx" if model.uses_audio else ".frame.onnx"
    eng_o = engine.open(f"{prefix}{suffix}")
    assert (eng_t.backend, eng_o.backend) == ("torch", "onnxruntime")
    for attr in ("name", "input_size", "map_size", "audio_rate", "audio_seconds", "uses_audio", "embed_dim"):
        assert getattr(eng_t, attr) == getattr(eng_o, attr) == getattr(model, attr), attr
    for batch in (1, 3):
        frame, flow, wave = _inputs(model, batch, seed=batch)
        emb_t, emb_o = eng_t.embed_audio(wave), eng_o.embed_audio(wave)
        assert emb_t.shape == emb_o.shape == (batch, model.embed_dim)
        assert emb_t.dtype == emb_o.dtype == np.float32
        if model.embed_dim:
            assert np.abs(emb_t - emb_o).max() <= TOL
        maps_t, scores_t = eng_t.localise(frame, flow, emb_t)
        maps_o, scores_o = eng_o.localise(frame, flow, emb_t)
        assert maps_t.shape == maps_o.shape == (batch, *model.map_size)
        assert maps_t.dtype == maps_o.dtype == np.float32
        assert np.abs(maps_t - maps_o).max() <= TOL
        assert maps_t.min() >= 0.0 and maps_t.max() <= 1.0
        assert scores_t.shape == scores_o.shape == (batch,) and scores_t.dtype == scores_o.dtype == np.float32
        assert np.abs(scores_t - scores_o).max() <= TOL
        assert np.array_equal(eng_t.heatmaps(frame, flow, emb_t), maps_t)  # the maps of the same call
        # the torch engine is the model itself
        with torch.inference_mode():
            ref, ref_score = model(torch.from_numpy(frame), torch.from_numpy(flow), torch.from_numpy(emb_t))
        assert np.abs(maps_t - ref.numpy()).max() <= 1e-6
        assert np.abs(scores_t - ref_score.numpy()).max() <= 1e-6
    assert eng_t.score_calibrated == eng_o.score_calibrated == model.score_is_calibrated


def test_prefix_and_frame_path_open_the_same_pair(saved):
    model, _, prefix = saved["flowgrad_en"]
    a, b = engine.open(prefix), engine.open(f"{prefix}.frame.onnx")
    assert a.source == b.source == f"{prefix}.frame.onnx"
    assert a.audio_source == f"{prefix}.audio.onnx"


def test_registry_name_and_open_engine_alias():
    eng = engine.open_engine("flow_only")
    assert eng.backend == "torch" and eng.name == "flow_only" and not eng.uses_audio
    frame, flow, wave = _inputs(eng.model, 2)
    emb = eng.embed_audio(wave)
    assert emb.shape == (2, 0)
    assert eng.heatmaps(frame, flow, emb).shape == (2, 224, 224)
    assert eng.heatmaps(frame, flow).shape == (2, 224, 224)  # no embedding needed without audio
    assert engine.open is engine.open_engine


def test_onnx_wave_is_cropped_to_newest_or_left_padded(saved):
    model, _, prefix = saved["rcgrad"]
    eng = engine.open(prefix)
    n = eng.samples
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal((1, n + 500)) * 0.1).astype(np.float32)
    np.testing.assert_array_equal(eng.fit_wave(wave), wave[:, 500:])
    short = wave[:, : n - 100]
    fitted = eng.fit_wave(short)
    assert fitted.shape == (1, n) and not fitted[:, :100].any()
    np.testing.assert_array_equal(fitted[:, 100:], short)
    np.testing.assert_allclose(eng.embed_audio(wave), eng.embed_audio(wave[:, 500:]), atol=0)


def test_fixed_batch_graph_rejects_other_batch(tmp_path):
    torch.manual_seed(0)
    model = models.create("rcgrad", **small_config("rcgrad"))
    export_onnx(model, tmp_path / "fixed", batch=2)
    eng = engine.open(tmp_path / "fixed")
    frame, flow, wave = _inputs(model, 3)
    with pytest.raises(engine.EngineError, match=r"fixed\.audio\.onnx.*fixed batch of 2.*--batch dynamic"):
        eng.embed_audio(wave)
    with pytest.raises(engine.EngineError, match=r"fixed\.frame\.onnx.*fixed batch of 2.*--batch dynamic"):
        eng.heatmaps(frame, flow, np.zeros((3, eng.embed_dim), np.float32))
    assert eng.embed_audio(wave[:2]).shape == (2, eng.embed_dim)


def test_errors(saved, tmp_path):
    model, ckpt, prefix = saved["flowgrad_en"]
    with pytest.raises(engine.EngineError, match=r"model\.xyz.*unknown model file type"):
        (tmp_path / "model.xyz").write_bytes(b"x")
        engine.open(tmp_path / "model.xyz")
    with pytest.raises(engine.EngineError, match=r"missing\.ckpt: no such checkpoint"):
        engine.open(tmp_path / "missing.ckpt")
    with pytest.raises(engine.EngineError, match=r"nothing\.frame\.onnx: no such file.*export\.onnx"):
        engine.open(tmp_path / "nothing.frame.onnx")
    with pytest.raises(engine.EngineError, match="not a registered model"):
        engine.open("no_such_model")
    # truncated frame graph
    data = open(f"{prefix}.frame.onnx", "rb").read()
    (tmp_path / "cut.frame.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxFileError, match=r"cut\.frame\.onnx: not a valid ONNX model \(truncated"):
        engine.open(tmp_path / "cut.frame.onnx")
    # frame graph of an audio model without its audio sibling
    (tmp_path / "alone.frame.onnx").write_bytes(data)
    with pytest.raises(engine.EngineError, match=r"alone\.audio\.onnx: no such file"):
        engine.open(tmp_path / "alone")
    # truncated checkpoint
    raw = ckpt.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"cut\.ckpt"):
        engine.open(tmp_path / "cut.ckpt")
    for suffix in (".ep", ".ts", ".trt"):
        with pytest.raises(engine.EngineError, match="torch-tensorrt and a CUDA GPU.*pip install torch-tensorrt"):
            engine.open(tmp_path / f"model.frame{suffix}")
    with pytest.raises(engine.EngineError, match="device must be"):
        engine.open(ckpt, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(engine.EngineError, match="no CUDA device.*device='cpu'"):
            engine.open(ckpt, device="cuda")
    with pytest.raises(engine.EngineError, match="backend='onnxruntime'"):
        engine.open(ckpt, backend="onnxruntime")
    with pytest.raises(engine.EngineError, match="backend must be"):
        engine.open(ckpt, backend="tensorrt")


def test_input_shape_errors(saved):
    model, ckpt, prefix = saved["htf"]
    frame, flow, wave = _inputs(model, 2)
    for eng in (engine.open(ckpt), engine.open(prefix)):
        emb = eng.embed_audio(wave)
        with pytest.raises(ValueError, match="flow must have shape"):
            eng.heatmaps(frame, flow[:1], emb)
        with pytest.raises(ValueError, match="frame must have shape"):
            eng.heatmaps(frame[:, :, :100], flow, emb)
        with pytest.raises(ValueError, match="embedding must have shape"):
            eng.heatmaps(frame, flow, emb[:, :3])
        with pytest.raises(ValueError, match="wave must be"):
            eng.embed_audio(wave[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_engines_agree(saved):
    model, ckpt, prefix = saved["flowgrad_en"]
    frame, flow, wave = _inputs(model, 2)
    eng = engine.open(ckpt, device="cuda")
    emb = eng.embed_audio(wave)
    ref = engine.open(ckpt).heatmaps(frame, flow, emb)
    assert np.abs(eng.heatmaps(frame, flow, emb) - ref).max() <= 1e-3
    try:
        eng_o = engine.open(prefix, device="cuda")
    except engine.EngineError as exc:
        assert "onnxruntime-gpu" in str(exc) or "CUDA" in str(exc)
        return
    assert np.abs(eng_o.heatmaps(frame, flow, emb) - ref).max() <= 1e-3


def test_onnx_cuda_without_provider_names_the_fix(saved):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDAExecutionProvider is available here")
    _, _, prefix = saved["rcgrad"]
    with pytest.raises(engine.EngineError, match="onnxruntime-gpu"):
        engine.open(prefix, device="cuda")


# --------------------------------------------------------------------------- hostile files, untrained names


TAMPERED = [
    ({"embed_dim": {"a": 1}}, "frame", "'embed_dim' must be an integer >= 0"),
    ({"input_size": "abc"}, "frame", "'input_size' must be [height, width]"),
    ({"embed_dim": None}, "frame", "no 'embed_dim' entry"),
    ({"uses_audio": "yes"}, "frame", "'uses_audio' must be true or false"),
    ({"audio_rate_hz": -16000}, "frame", "'audio_rate_hz' must be a positive integer"),
    ({"audio_window_s": "5"}, "frame", "'audio_window_s' must be a positive number"),
    ({"batch": 0}, "frame", "'batch' must be 'dynamic' or a positive integer"),
    ({"outputs": {"heatmap": {"shape": ["batch", "x"]}}}, "frame", "'outputs' must be a JSON object with heatmap"),
    ({"version": "1"}, "frame", "'version' must be a positive integer"),
    ({"audio_samples": [80000]}, "audio", "'audio_samples' must be a positive integer"),
    ({"precision": 8}, "frame", "'precision' must be a string"),
    # the right types, but not what the graph takes
    ({"embed_dim": 7}, "frame", "the metadata describes inputs"),
    ({"input_size": [100, 100]}, "frame", "the metadata describes inputs"),
    ({"audio_samples": 123}, "audio", "the metadata describes inputs"),
    ({"audio_rate_hz": 10**12}, "frame", "'audio_rate_hz' must be a positive integer"),
    ({"audio_rate_hz": 8000}, "frame", "does not give the audio graph's"),
    ({"audio_window_s": 10**400}, "frame", "'audio_window_s' must be a positive number"),
    ({"embed_dim": 10**400}, "frame", "'embed_dim' must be an integer >= 0"),
    ({"audio_window_s": 0.5}, "frame", "does not give the audio graph's"),
]


@pytest.mark.parametrize("changes, role, message", TAMPERED)
def test_tampered_onnx_metadata_is_one_line_naming_the_file(saved, tmp_path, changes, role, message):
    _, _, prefix = saved["rcgrad"]
    out = tamper(prefix, tmp_path / "evil", role, **changes)
    with pytest.raises(OnnxFileError) as excinfo:
        engine.open(out)
    text = str(excinfo.value)
    assert "\n" not in text and text.startswith(f"{out}.{role}.onnx: "), text
    assert message in text and "export.onnx" in text, text


def test_nan_weights_are_refused_by_open(saved, tmp_path):
    model, _, _ = saved["flowgrad_en"]
    poisoned = models.create("flowgrad_en", **small_config("flowgrad_en"))
    poisoned.load_state_dict(model.state_dict())
    with torch.no_grad():
        poisoned.flow_encoder.conv1.weight[0, 0, 0, 0] = float("nan")
    checkpoint.save(tmp_path / "nan.ckpt", poisoned)
    with pytest.raises(checkpoint.CheckpointError, match=r"nan\.ckpt: .*flow_encoder\.conv1\.weight"):
        engine.open(tmp_path / "nan.ckpt")


def test_registry_names_with_weights_need_allow_untrained(saved):
    for name in ("rcgrad", "flowgrad_en", "htf"):
        with pytest.raises(checkpoint.UntrainedError, match=rf"^{name}: .*untrained.*--untrained"):
            engine.open(name)
    eng = engine.open("rcgrad", allow_untrained=True)
    assert eng.untrained and eng.source == "rcgrad" and eng.backend == "torch"
    assert not engine.open("flow_only").untrained  # no weights to train
    _, ckpt, prefix = saved["rcgrad"]
    assert not engine.open(ckpt).untrained and not engine.open(prefix).untrained


def _without_score(prefix, out):
    """A copy of an export as written before the sounding score: the heatmap its only output."""
    import shutil

    import onnx

    from flowgrad.onnx_meta import GraphMeta, write_props

    proto = onnx.load(f"{prefix}.frame.onnx")
    kept = [o for o in proto.graph.output if o.name != "score"]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    meta = GraphMeta.parse({p.key: p.value for p in proto.metadata_props}, prefix)
    outputs = {"heatmap": meta.outputs["heatmap"]}
    import dataclasses
    write_props(proto, dataclasses.replace(meta, outputs=outputs, score_calibrated=None))
    onnx.save(proto, f"{out}.frame.onnx")
    shutil.copy(f"{prefix}.audio.onnx", f"{out}.audio.onnx")


def test_an_export_from_before_the_score_opens_with_scores_of_one_and_one_warning(saved, tmp_path):
    model, ckpt, prefix = saved["rcgrad"]
    _without_score(prefix, tmp_path / "old")
    with pytest.warns(engine.NoScoreWarning) as record:
        eng = engine.open(tmp_path / "old")
    assert len(record) == 1 and "\n" not in str(record[0].message) and "re-export" in str(record[0].message)
    assert record[0].filename == str(tmp_path / "old.frame.onnx")
    assert not eng.score_calibrated
    frame, flow, wave = _inputs(model, 2)
    emb = eng.embed_audio(wave)
    maps, scores = eng.localise(frame, flow, emb)
    assert np.abs(maps - engine.open(ckpt).heatmaps(frame, flow, emb)).max() <= TOL
    assert scores.dtype == np.float32 and np.array_equal(scores, np.ones(2, np.float32))


def test_a_calibrated_model_exports_a_calibrated_score(tmp_path):
    torch.manual_seed(0)
    model = models.create("htf", **small_config("htf"))
    frame, flow, wave = _inputs(model, 3, seed=4)
    model.set_score_calibration(30.0, -15.0)
    export_onnx(model, tmp_path / "cal")
    eng_o, eng_t = engine.open(tmp_path / "cal"), engine.TorchEngine(model)
    assert eng_o.score_calibrated and eng_o.meta.score_calibrated
    emb = eng_t.embed_audio(wave)
    with torch.inference_mode():
        evidence = model.sounding_evidence(*(torch.from_numpy(a) for a in (frame, flow, emb))).numpy()
    want = 1 / (1 + np.exp(-(30.0 * evidence - 15.0)))
    assert np.abs(eng_o.localise(frame, flow, emb)[1] - want).max() <= TOL
    assert np.abs(eng_t.localise(frame, flow, emb)[1] - want).max() <= 1e-5
