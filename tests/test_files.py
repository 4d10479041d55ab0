"""flowgrad.files.atomic_write: the old file survives a failed write, and nothing is left behind."""
import os

import pytest

from flowgrad.files import atomic_write


def test_writes_bytes_and_text(tmp_path):
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"\x00\x01")
    with atomic_write(tmp_path / "b.txt", "w") as f:
        f.write("h\u00e9\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "h\u00e9\n"
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.txt"]
    assert not os.access(tmp_path / "a.bin", os.X_OK)


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"the good one")
    with pytest.raises(type(error)):
        with atomic_write(path) as f:
            f.write(b"half of the new o")
            raise error
    assert path.read_bytes() == b"the good one"
    assert os.listdir(tmp_path) == ["model.ckpt"]  # the temporary file is gone


def test_failure_before_any_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "x", "wb"):
            raise ValueError("bad data")
    assert os.listdir(tmp_path) == []


def test_missing_directory_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        with atomic_write(tmp_path / "no" / "such" / "dir.bin") as f:
            f.write(b"x")


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
