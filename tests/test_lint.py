"""The package stays lint-clean, formatted and type-checked, as configured in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", [("ruff", "check", "--no-cache", "src"),
                                     ("ruff", "format", "--check", "--no-cache", "src")], ids=["check", "format"])
def test_ruff(command):
    proc = _run(*command)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy(tmp_path):
    proc = _run("mypy", "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_finds_a_bad_file(tmp_path):
    """The check above can fail: the same configuration reports an unused import."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    proc = _run("ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad), cwd=tmp_path)
    assert proc.returncode == 1 and "F401" in proc.stdout
