"""The import rules between the project's packages, read from the source with ast.

* flowgrad/ (the core) imports none of the application packages (realtime, export,
  training) nor bench or tests;
* realtime/, export/ and training/ do not import each other (what they share lives in
  the core);
* bench/ may import anything but tests/;
* a test file never imports another test file (shared helpers live in helpers modules
  and conftest fixtures).

Every import counts, at module level or inside a function.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPLICATIONS = ("realtime", "export", "training")
TESTS = ROOT / "tests"


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute dotted module name) of every import in ``path`` (relative ones resolved);
    ``source``: its text, if not read from the file."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            if node.module is None:  # from . import x: x may be a module
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _violations(folder: str, forbidden) -> list[str]:
    """``file:line: module`` for each import under ``folder`` that ``forbidden(module)`` refuses."""
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in _imports(path):
            if forbidden(module):
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return out


def _top(module: str) -> str:
    return module.split(".")[0]


def _test_module(module: str) -> bool:
    return _top(module) == "tests" or _top(module).startswith("test_")


def test_the_core_imports_no_application_package():
    bad = _violations("flowgrad", lambda m: _top(m) in (*APPLICATIONS, "bench") or _test_module(m))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", APPLICATIONS)
def test_application_packages_do_not_import_each_other(package):
    others = set(APPLICATIONS) - {package}
    bad = _violations(package, lambda m: _top(m) in others or _top(m) == "bench" or _test_module(m))
    assert not bad, "\n".join(bad)


def test_bench_does_not_import_tests():
    test_helpers = {p.stem for p in TESTS.glob("*.py")}  # test files and helper modules alike
    bad = _violations("bench", lambda m: _test_module(m) or _top(m) in test_helpers)
    assert not bad, "\n".join(bad)


def test_no_test_file_imports_another():
    test_files = {p.stem for p in TESTS.glob("test_*.py")}
    bad = _violations("tests", lambda m: _top(m) in test_files or _top(m) == "conftest")
    assert not bad, "\n".join(bad)


def test_the_rules_see_every_kind_of_import():
    """The reader finds module-level, function-level, from- and relative imports."""
    source = ("import realtime.cli\nfrom export import onnx\ndef f():\n    from ..training import train\n"
              "    from . import engine\n")
    found = [m for _, m in _imports(ROOT / "flowgrad" / "models" / "probe.py", source)]
    assert found == ["realtime.cli", "export", "flowgrad.training", "flowgrad.models", "flowgrad.models.engine"]
