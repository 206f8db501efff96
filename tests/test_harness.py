"""The test harness itself: a missing reference library is a skip, or a failure under BT_REQUIRE_REFERENCES=1."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_TESTS = """
import pytest

def test_reference_inside_the_test():
    pytest.importorskip("balancedtorch_no_such_reference")

def test_fixture_reference(torchvision_ops):
    assert torchvision_ops is not None
"""
_MODULE = """
import pytest

ref = pytest.importorskip("balancedtorch_no_such_reference")

def test_never_runs():
    pass
"""


def _run(tmp_path, require):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_in_test.py").write_text(_TESTS)
    (tmp_path / "test_in_module.py").write_text(_MODULE)
    env = {k: v for k, v in os.environ.items() if k != "BT_REQUIRE_REFERENCES"}
    if require:
        env["BT_REQUIRE_REFERENCES"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rfEs",
            "--continue-on-collection-errors",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc


def test_missing_reference_is_a_skip_by_default(tmp_path):
    proc = _run(tmp_path, require=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" in proc.stdout and "failed" not in proc.stdout and "error" not in proc.stdout.lower()


def test_missing_reference_fails_when_references_are_required(tmp_path):
    pytest.importorskip("torchvision.ops")  # the fixture's library must be there for its test to pass
    proc = _run(tmp_path, require=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("BT_REQUIRE_REFERENCES=1 but a reference library is missing") >= 2, proc.stdout
    assert "1 passed" in proc.stdout  # the fixture test, whose library is installed


def _marks_cuda(decorators) -> bool:
    import ast

    return any("mark.cuda" in ast.unparse(d) for d in decorators)


def test_every_gpu_test_carries_the_gpu_marker():
    """`pytest -m cuda` (benchmarks/gpu_check.sh) selects by marker: a test named for CUDA without the marker would never run there."""
    import ast

    unmarked = []
    for path in sorted(Path(__file__).parent.rglob("test_*.py")):
        if path.parent.name == "packaging":  # build tests about the CUDA toolkit, not GPU tests
            continue
        tree = ast.parse(path.read_text())
        module_marked = any(
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
            and "mark.cuda" in ast.unparse(node.value)
            for node in tree.body
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and "cuda" in node.name:
                if not (module_marked or _marks_cuda(node.decorator_list)):
                    unmarked.append(f"{path.relative_to(Path(__file__).parent)}::{node.name}")
    assert unmarked == []
