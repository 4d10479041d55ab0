"""The console scripts of pyproject.toml: installed, each runs its module's --help, and every help
text is for users (it names no file they do not have)."""
import subprocess
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_the_main_commands_are_console_scripts():
    assert {"flowgrad-live", "flowgrad-export", "flowgrad-train", "flowgrad-evaluate", "flowgrad-subscribe",
            "flowgrad-dashboard"} <= set(SCRIPTS)


def test_readme_documents_every_console_script_next_to_its_module_form():
    readme = (ROOT / "README.md").read_text()
    for name, target in SCRIPTS.items():
        module = target.split(":")[0].removesuffix(".__main__")
        assert name in readme, f"README does not mention {name}"
        assert module in readme or (module == "realtime.cli" and "run_live.py" in readme), module


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_help(name):
    script = Path(sysconfig.get_path("scripts")) / name
    if not script.exists():  # an install without the project's scripts: say so instead of passing
        pytest.fail(f"{script} is not installed; run bash scripts/setup.sh")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and len(proc.stdout) > 200
    # Help is for users: the project's internal notes (REFERENCE.md) are not theirs to read.
    assert "REFERENCE" not in proc.stdout
