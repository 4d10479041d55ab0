"""flowgrad.sizes: (H, W) in code, "WxH" from people through one reader, used by every
command-line size option."""
import argparse
import ast
from pathlib import Path

import pytest

from flowgrad.errors import InputError
from flowgrad.sizes import SizeError, format_wxh, parse_wxh, wxh_arg

ROOT = Path(__file__).resolve().parent.parent


def test_width_first_text_becomes_height_first_pair():
    assert parse_wxh("320x180") == (180, 320)
    assert parse_wxh(" 1280X720 ") == (720, 1280)
    assert format_wxh((180, 320)) == "320x180"
    assert format_wxh(parse_wxh("160x96")) == "160x96"


@pytest.mark.parametrize("text", ["320by180", "320x", "x180", "320x180x3", "-320x180", "320.5x180", "", "0x0x",
                                  "320 x 180", "+320x180", "3_20x180"])
def test_a_bad_size_is_one_clear_error_naming_it_and_an_example(text):
    with pytest.raises(SizeError) as e:
        parse_wxh(text)
    message = str(e.value)
    assert isinstance(e.value, InputError) and isinstance(e.value, ValueError)
    assert repr(text) in message and "WIDTHxHEIGHT" in message and "320x180" in message and "\n" not in message


def test_below_the_minimum_names_it():
    assert parse_wxh("16x16", minimum=16) == (16, 16)
    with pytest.raises(SizeError, match=r"size '40x8' is too small: it must be at least 16x16 px, e.g. 320x180"):
        parse_wxh("40x8", minimum=16)
    with pytest.raises(SizeError, match="at least 1x1"):
        parse_wxh("0x10")


def test_argparse_type_gives_the_same_message_and_exit_2(capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--size", type=wxh_arg(32))
    assert parser.parse_args(["--size", "256x192"]).size == (192, 256)
    with pytest.raises(argparse.ArgumentTypeError, match="at least 32x32"):
        wxh_arg(32)("16x16")
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--size", "640by360"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --size: size '640by360' is not WIDTHxHEIGHT" in err


def _size_options():
    """(file, option, type source) of every add_argument whose option mentions a size."""
    found = []
    for folder in ("realtime", "export", "training", "bench", "flowgrad"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
                    continue
                flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if any("size" in f for f in flags) and not any("batch" in f for f in flags):
                    kind = next((ast.unparse(k.value) for k in node.keywords if k.arg == "type"), None)
                    found.append((path.relative_to(ROOT).as_posix(), flags[0], kind))
    return found


def test_every_command_line_size_option_reads_wxh_through_the_one_helper():
    options = _size_options()
    names = {(f, o) for f, o, _ in options}
    assert {("realtime/cli.py", "--flow-size"), ("export/onnx.py", "--size"), ("training/synth/__main__.py", "--size"),
            ("training/data/flowcache.py", "--work-size"), ("bench/live.py", "--flow-size"),
            ("bench/streams.py", "--flow-size"), ("bench/flow.py", "--sizes")} <= names
    assert [o for o in options if not (o[2] or "").startswith("wxh_arg(")] == []


def test_run_live_flow_size_is_height_width_in_the_config():
    from realtime import cli

    config = cli.to_config(cli.build_parser().parse_args(["--camera", "x.mp4", "--flow-size", "160x96"]))
    assert config.flow.working_hw == (96, 160)
    assert cli.build_parser().parse_args([]).flow_hw == (180, 320)  # the documented default 320x180
