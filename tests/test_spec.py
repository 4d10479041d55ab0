"""Model specs: BASE[+doa][+memory|+nomemory], one parser for every tool."""
import pytest

from flowgrad.spec import ModelSpec, SpecError, parse_spec


@pytest.mark.parametrize("text, expected", [
    ("flow_only", ModelSpec("flow_only")),
    ("flow_only+doa", ModelSpec("flow_only", doa=True)),
    ("flowgrad_h:runs/rc/best.ckpt+memory+doa", ModelSpec("flowgrad_h:runs/rc/best.ckpt", doa=True, memory=True)),
    ("runs/en.ckpt+doa+nomemory", ModelSpec("runs/en.ckpt", doa=True, memory=False)),
])
def test_suffixes_in_any_order_round_trip(text, expected):
    spec = parse_spec(text)
    assert spec == expected
    assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize("text", ["flow_only+doa+doa", "x.ckpt+memory+nomemory", "+doa"])
def test_repeated_or_contradicting_suffixes_are_one_line_errors(text):
    with pytest.raises(SpecError) as e:
        parse_spec(text)
    assert "\n" not in str(e.value) and text in str(e.value)


def test_an_existing_file_is_taken_whole(tmp_path):
    odd = tmp_path / "model+doa"
    odd.write_bytes(b"")
    assert parse_spec(str(odd)) == ModelSpec(str(odd))
