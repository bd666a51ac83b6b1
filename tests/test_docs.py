"""The README and the docs site: the site builds, the README stays short, and every code block runs.

How code blocks are treated (also written down for authors in docs/writing-docs.md):

* ``python`` blocks run, each in a fresh interpreter;
* ``bash`` / ``sh`` / ``shell`` blocks run in bash with ``set -euo pipefail``;
* ``console`` and ``text`` blocks are shown, never run (expensive recipes, servers, output);
* ``json`` and ``toml`` blocks must parse;
* any other tag, or none, fails the test: a block either runs or says that it does not.

The blocks of one page run in order in one fresh folder (files one block writes, the next can read), which
starts with the sample inputs of :func:`make_samples`. In shell blocks ``digitnet`` and ``python`` are this
interpreter; ``pip install …`` is checked, not run (the extras it names must exist in pyproject.toml, and the
tests' environment already has them); ``pytest`` is the suite that is running this test, so it is not run
again (``test_readme_test_command_is_what_ci_runs`` ties it to ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import digitnet

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, ROOT / "benchmarks" / "README.md", *sorted(DOCS.glob("**/*.md"))]

RUN_PYTHON = {"python"}
RUN_SHELL = {"bash", "sh", "shell"}
SHOWN_ONLY = {"console", "text"}
PARSED = {"json", "toml"}
README_MAX_LINES = 250
BLOCK_TIMEOUT_S = 600

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")

# Phrases that narrate how the project was developed rather than describe it.
NARRATIVE = [r"\bthis session\b", r"\bpredates?\b", r"\bmerged?\b", r"\bmeasured just\b",
             r"\bbefore (?:the|it was) \w+ (?:was )?(?:merged|changed|made)\b", r"\bjust before\b",
             r"\ban earlier (?:run|version)\b", r"\bpreviously\b", r"\bno longer\b", r"\buntil recently\b",
             r"\bwas made faster\b", r"\bthis week\b", r"\byesterday\b", r"\bissue #?\d+\b",
             r"\bwhat got the\b", r"\bthis change\b", r"\bthe old code\b", r"\bwe (?:changed|added|rewrote)\b"]


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """Fenced blocks of a Markdown text: (line number, language tag, code), indented fences included."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        start, body, i = i + 1, [], i + 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        lang = info.split()[0].lstrip(".{").rstrip("}") if info else ""
        blocks.append((start, lang, "\n".join(body) + "\n"))
        i += 1
    return blocks


def parse(lang: str, code: str) -> None:
    """A data block must parse (TOML needs Python 3.11's tomllib; without it only JSON is checked)."""
    if lang == "json":
        json.loads(code)
    elif importlib.util.find_spec("tomllib") is not None:
        import tomllib
        tomllib.loads(code)


def make_samples(folder: Path) -> None:
    """The inputs the docs' examples name: digit.png, photo.jpg, number.png, scans/, test.csv, old.pkl."""
    from PIL import Image
    test = digitnet.load_mnist().test

    def drawing(img: np.ndarray, size: int = 280) -> Image.Image:   # dark ink on white, as a drawing or scan
        return Image.fromarray(255 - img).resize((size, size), Image.BICUBIC)

    drawing(test.images[0]).save(folder / "digit.png")
    drawing(test.images[1]).convert("RGB").save(folder / "photo.jpg", quality=85)
    row = np.concatenate([np.pad(test.images[i], ((0, 0), (6, 6))) for i in (2, 3, 4)], axis=1)
    Image.fromarray(255 - row).resize((row.shape[1] * 4, 112), Image.BICUBIC).save(folder / "number.png")
    (folder / "scans").mkdir()
    for i in range(5, 9):
        drawing(test.images[i], 140).save(folder / "scans" / f"digit-{i}.png")
    header = ",".join(f"pixel{k}" for k in range(784))
    rows = [",".join(map(str, img.ravel())) for img in test.images[:5]]
    (folder / "test.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    state = digitnet.load("seed").state_dict()      # the notebook's w1 (784, 64), b1, w2 (64, 10), b2
    weights = tuple(np.array(state[k]) for k in ("0.W", "0.b", "2.W", "2.b"))
    (folder / "old.pkl").write_bytes(pickle.dumps(weights))


def _tool(folder: Path, name: str, source: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(source))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _extras() -> set[str]:
    """The extras pyproject.toml defines (read by hand: tomllib is Python 3.11+)."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*=", section, re.MULTILINE))


def make_tools(folder: Path) -> None:
    """``digitnet``, ``python``, ``pip`` and ``pytest`` as the shell blocks see them (see the module docstring)."""
    _tool(folder, "digitnet", "from digitnet.cli import console\nconsole()\n")
    _tool(folder, "python", "import os, sys\nos.execv(sys.executable, [sys.executable] + sys.argv[1:])\n")
    _tool(folder, "pip", f"""\
        import re, sys
        extras = {sorted(_extras())!r}
        args = [a for a in sys.argv[1:] if a not in ("-q", "--quiet", "-U", "--upgrade")]
        if args[:1] != ["install"] or len(args) < 2:
            sys.exit(f"docs: only 'pip install .[EXTRAS]' is checked, not {{sys.argv[1:]}}")
        for target in args[1:]:
            if target == "-e":
                continue
            m = re.fullmatch(r"(?:\\.|digitnet)(?:\\[([\\w,-]+)\\])?", target)
            if not m:
                sys.exit(f"docs: pip install of {{target!r}}: the docs install digitnet itself, nothing else")
            for extra in (m[1] or "").split(","):
                if extra and extra not in extras:
                    sys.exit(f"docs: pip install names the extra {{extra!r}}; pyproject.toml has {{extras}}")
        """)
    _tool(folder, "pytest", "print('pytest: the suite running this test (checked against .ci/run)')\n")


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    make_samples(folder)
    return folder


def run_page(text: str, name: str, tmp_path: Path, samples: Path) -> None:
    """Run every block of one page in order (see the module docstring); fail on the first that fails."""
    work, tools, scripts = tmp_path / "work", tmp_path / "bin", tmp_path / "scripts"
    shutil.copytree(samples, work)
    for d in (tools, scripts):
        d.mkdir()
    make_tools(tools)
    package_parent = str(Path(digitnet.__file__).resolve().parent.parent)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(p for p in (package_parent, str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    for n, (line, lang, code) in enumerate(code_blocks(text)):
        where = f"{name}:{line} ({lang or 'no language tag'})"
        if lang in SHOWN_ONLY:
            continue
        if lang in PARSED:
            parse(lang, code)
            continue
        if lang in RUN_PYTHON:
            script = scripts / f"block{n}.py"
            script.write_text(code)
            argv = [sys.executable, str(script)]
        elif lang in RUN_SHELL:
            argv = ["bash", "-c", "set -euo pipefail\n" + code]
        else:
            pytest.fail(f"{where}: tag a block {sorted(RUN_PYTHON | RUN_SHELL)} (run), "
                        f"{sorted(SHOWN_ONLY)} (shown, not run) or {sorted(PARSED)} (parsed)")
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S,
                              check=False)
        assert proc.returncode == 0, f"{where} failed:\n{code}\n--- stdout\n{proc.stdout[-3000:]}\n" \
                                     f"--- stderr\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_code_block_runs_as_written(page, tmp_path, samples):
    run_page(page.read_text(), str(page.relative_to(ROOT)), tmp_path, samples)


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; keep it to {README_MAX_LINES} and move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_development_narrative(page):
    text = page.read_text()
    found = [(text[:m.start()].count("\n") + 1, m[0]) for pattern in NARRATIVE
             for m in re.finditer(pattern, text, re.IGNORECASE)]
    assert not found, f"{page.relative_to(ROOT)} narrates history (say what the software does instead): {found}"


def test_readme_test_command_is_what_ci_runs():
    readme = README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install ".[test]" && pytest' in readme
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert 'pip install --quiet ".[test]"' in commands and commands[-1] == "pytest"


def test_block_parser_finds_tags_and_indented_blocks():
    text = "x\n```python\nprint(1)\n```\n- item\n\n    ```bash\n    echo hi\n    ```\n````text\n```\n````\n"
    assert code_blocks(text) == [(2, "python", "print(1)\n"), (7, "bash", "echo hi\n"), (10, "text", "```\n")]


def test_a_failing_block_fails(tmp_path, samples):
    with pytest.raises(AssertionError, match=r"page.md:1 \(bash\) failed(.|\n)*no-such-file.png: no such file"):
        page = "```bash\ndigitnet predict digit.png\ndigitnet predict no-such-file.png\n```\n"
        run_page(page, "page.md", tmp_path, samples)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
                    reason="mkdocs and mkdocs-material are not installed (pip install '.[test]' installs them)")
def test_docs_site_builds_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
                           "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_shell_blocks_see_only_real_extras(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    make_tools(tools)
    ok = subprocess.run([str(tools / "pip"), "install", ".[web]"], capture_output=True, text=True, check=False)
    bad = subprocess.run([str(tools / "pip"), "install", ".[no-such-extra]"], capture_output=True, text=True,
                         check=False)
    other = subprocess.run([str(tools / "pip"), "install", "requests"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and bad.returncode != 0 and "no-such-extra" in bad.stderr and other.returncode != 0
    assert {"test", "web", "plot"} <= _extras()
