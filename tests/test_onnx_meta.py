"""flowgrad.onnx_meta: the one schema of the exported graphs' metadata, written by export.onnx
and read by the engine (the engine's refusals of hostile metadata: tests/test_engine.py)."""
import dataclasses

import pytest

from flowgrad.onnx_meta import FORMAT, VERSION, GraphMeta, OnnxFileError, check_pair, read_graph

FRAME = GraphMeta(model="rcgrad", config={"width": 0.25}, role="frame",
                  inputs={"frame": {"shape": ["batch", 3, 224, 224], "dtype": "float32"}},
                  outputs={"heatmap": {"shape": ["batch", 224, 224], "dtype": "float32"}}, batch="dynamic",
                  input_size=(224, 224), uses_audio=True, embed_dim=128, audio_rate_hz=16000,
                  audio_window_s=5.0)
AUDIO = dataclasses.replace(FRAME, role="audio", outputs={}, audio_samples=80000)


def test_written_props_read_back_equal():
    for meta in (FRAME, AUDIO, dataclasses.replace(FRAME, precision="int8", calibration="4 frames of x.mp4")):
        props = meta.props()
        assert all(isinstance(v, str) for v in props.values())
        assert GraphMeta.parse(props, "x.onnx") == meta
    assert "audio_samples" not in FRAME.props() and "precision" not in FRAME.props()  # unset: not written
    assert FRAME.decoded()["format"] == FORMAT and FRAME.decoded()["version"] == VERSION
    assert FRAME.map_size == (224, 224)
    assert FRAME.graph_inputs() == {"frame": [3, 224, 224], "flow": [2, 224, 224], "audio_embedding": [128]}
    assert AUDIO.graph_inputs() == {"wave": [80000]}


def test_foreign_and_newer_files_are_refused():
    props = FRAME.props()
    with pytest.raises(OnnxFileError, match="^x.onnx: not a flowgrad ONNX export"):
        GraphMeta.parse({**props, "format": '"other"'}, "x.onnx")
    with pytest.raises(OnnxFileError, match="version 2 is newer"):
        GraphMeta.parse({**props, "version": "2"}, "x.onnx")


def test_pairs_must_belong_together():
    check_pair(FRAME, AUDIO, "p.frame.onnx", "p.audio.onnx")
    with pytest.raises(OnnxFileError, match="different model/config"):
        check_pair(FRAME, dataclasses.replace(AUDIO, config={"width": 1.0}), "p.frame.onnx", "p.audio.onnx")
    with pytest.raises(OnnxFileError, match="does not give the audio graph's 123 samples"):
        check_pair(FRAME, dataclasses.replace(AUDIO, audio_samples=123), "p.frame.onnx", "p.audio.onnx")


def test_export_writes_what_the_reader_reads(onnx_exports):
    model, _, paths = onnx_exports["flowgrad_en"]
    _, frame = read_graph(paths[0], "frame")
    _, audio = read_graph(paths[1], "audio")
    assert frame.model == "flowgrad_en" and frame.config == dataclasses.asdict(model.config)
    assert frame.input_size == model.input_size and frame.map_size == model.map_size
    assert audio.audio_samples == round(model.audio_rate * model.audio_seconds)
    check_pair(frame, audio, *paths)
    with pytest.raises(OnnxFileError, match="holds the 'audio' graph, expected the 'frame' graph"):
        read_graph(paths[1], "frame")
