"""The command-line tools of export/ and training/ tell bad input from bugs.

Bad input (a flowgrad.errors.InputError) is one line on stderr and exit status 2. A
programming error, simulated by making an internal function raise a plain ValueError
(or, for export.trt, RuntimeError), is not reported as bad input: it escapes main(), so
``python -m ...`` shows its traceback and exits with status 1.
"""
import pytest
import torch

from flowgrad import checkpoint, models

BUG = "simulated programming error"


def _bug(*args, **kwargs):
    raise ValueError(BUG)


def _one_line_exit_2(code, capsys, *needles):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def rc_ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "rc.ckpt"
    checkpoint.save(path, models.create("rcgrad", width=0.125))
    return path


def test_export_onnx(tmp_path, rc_ckpt, capsys, monkeypatch):
    import export.onnx as cli

    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"garbage")
    _one_line_exit_2(cli.main([str(rc_ckpt), "--int8", "--calibrate", str(bad), "-o", str(tmp_path / "x")]),
                     capsys, "not_a_video.mp4")
    with pytest.raises(SystemExit) as exc:
        cli.main([str(rc_ckpt), "--size", "16x16"])
    assert exc.value.code == 2 and "at least 32x32" in capsys.readouterr().err
    monkeypatch.setattr(cli, "export_onnx", _bug)
    with pytest.raises(ValueError, match=BUG):
        cli.main([str(rc_ckpt), "-o", str(tmp_path / "y")])


def test_export_trt(tmp_path, rc_ckpt, capsys, monkeypatch):
    import export.trt as cli

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"garbage")
    _one_line_exit_2(cli.main([str(broken)]), capsys, "broken.ckpt")

    def compiler_bug(*args, **kwargs):
        raise RuntimeError(BUG)

    monkeypatch.setattr(cli, "export_trt", compiler_bug)
    with pytest.raises(RuntimeError, match=BUG):
        cli.main([str(rc_ckpt)])


def test_training_train(tmp_path, capsys, monkeypatch):
    import training.train as cli

    args = ["--model", "rcgrad", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]
    _one_line_exit_2(cli.main(args), capsys, "nowhere")
    monkeypatch.setattr(cli, "run", _bug)
    with pytest.raises(ValueError, match=BUG):
        cli.main(args)


def test_training_evaluate(tmp_path, rc_ckpt, capsys, monkeypatch):
    import training.evaluate as cli

    _one_line_exit_2(cli.main(["--data", str(tmp_path), "--model", str(tmp_path / "missing.ckpt")]), capsys,
                     "missing.ckpt")
    monkeypatch.setattr(cli.engines, "open", _bug)
    with pytest.raises(ValueError, match=BUG):
        cli.main(["--data", str(tmp_path), "--model", str(rc_ckpt)])


def test_training_synth(tmp_path, capsys, monkeypatch):
    import training.synth.__main__ as cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["--out", str(tmp_path / "s"), "--clips", "0", "--seed", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "clips=0" in err
    monkeypatch.setattr(cli, "generate", _bug)
    with pytest.raises(ValueError, match=BUG):
        cli.main(["--out", str(tmp_path / "s"), "--clips", "1", "--seed", "1"])


def test_training_flowcache(tmp_path, capsys, monkeypatch):
    import training.data.flowcache as cli

    (tmp_path / "video").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "video_annotations.csv").write_text("frame_id,x\n1,2\n")
    _one_line_exit_2(cli.main(["--data", str(tmp_path)]), capsys, "video_annotations.csv")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--data", str(tmp_path), "--stride", "0"])
    assert exc.value.code == 2 and "stride_s" in capsys.readouterr().err
    monkeypatch.setattr(cli, "UrbansasWindows", _bug)
    with pytest.raises(ValueError, match=BUG):
        cli.main(["--data", str(tmp_path)])
