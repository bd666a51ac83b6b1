"""The package as users get it: sdist + wheel built, checked by twine, and the wheel alone installed in a
fresh virtual environment away from the source tree, where it trains, predicts and serves the page.

Offline and quick: the wheel goes in with ``--no-deps``, and the fresh environment sees the running one's
installed packages (numpy, fastapi, ...) through a ``.pth`` file placed *after* its own site-packages, so
``import digitnet`` there finds the wheel's copy, never the source tree or another install.
"""

import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("build")
pytest.importorskip("twine")


def _run(cmd, cwd, env=None, timeout=600):
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with the setuptools already installed (the test extra has it), no download
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=out)
    return sorted(out.glob("digitnet-*.whl")), sorted(out.glob("digitnet-*.tar.gz"))


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory):
    """A fresh venv holding only the wheel; returns (its bin folder, an environment for running it)."""
    home = tmp_path_factory.mktemp("fresh")
    env_dir = home / "venv"
    _run([sys.executable, "-m", "venv", env_dir], cwd=home)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    # no PYTHONPATH: a source tree on it would make pip think digitnet is installed already
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", dists[0][0]], cwd=home, env=env)
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home, env=env)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.strip()) / "zz-test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return bin_dir, env, home


def test_sdist_and_wheel_pass_twine_check_strict(dists):
    wheels, sdists = dists
    assert len(wheels) == 1 and len(sdists) == 1
    out = _run([sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists], cwd=wheels[0].parent)
    assert out.count("PASSED") == 2


def test_wheel_holds_the_package_data_and_metadata(dists):
    import zipfile
    names = zipfile.ZipFile(dists[0][0]).namelist()
    for needed in ("digitnet/models/seed.safetensors", "digitnet/models/reader.safetensors", "digitnet/datasets/mnist/t10k-images-idx3-ubyte.gz",
                   "digitnet/web/static/index.html", "digitnet/web/static/app.js", "digitnet/web/static/docs.js"):
        assert needed in names, needed
    meta = zipfile.ZipFile(dists[0][0]).read(next(n for n in names if n.endswith("METADATA"))).decode()
    # no Project-URL: the project has no public address to point to yet
    assert "License-Expression: MIT" in meta and "Classifier: " in meta
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_installed_wheel_is_the_one_imported(venv):
    bin_dir, env, home = venv
    where = _run([bin_dir / "python", "-c", "import digitnet; print(digitnet.__file__)"], cwd=home, env=env)
    assert Path(where.strip()).is_relative_to(bin_dir.parent) and not Path(where.strip()).is_relative_to(ROOT)
    version = _run([bin_dir / "digitnet", "--version"], cwd=home, env=env)
    import digitnet
    assert version.strip() == f"digitnet {digitnet.__version__}"


def test_installed_wheel_trains_and_predicts_with_the_shipped_model(venv, mnist):
    from PIL import Image
    bin_dir, env, home = venv
    tr, te = mnist.train.subset(slice(0, 600)), mnist.test.subset(slice(0, 200))
    np.savez(home / "mnist.npz", x_train=tr.images, y_train=tr.labels, x_test=te.images, y_test=te.labels)
    out = _run([bin_dir / "digitnet", "train", "--data", "mnist.npz", "--epochs", "1", "--quiet",
                "-o", "m.safetensors"], cwd=home, env=env)
    assert "test accuracy" in out and (home / "m.safetensors").is_file()
    Image.fromarray(255 - mnist.test.images[0]).resize((112, 112)).save(home / "digit.png")   # dark on light
    out = _run([bin_dir / "digitnet", "predict", "digit.png"], cwd=home, env=env)
    assert out.startswith(f"digit.png: {mnist.test.labels[0]}")


def test_installed_wheel_serves_the_page_and_its_docs(venv):
    bin_dir, env, home = venv
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(bin_dir / "digitnet"), "serve", "--port", str(port)], cwd=home, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):                          # wait for it to listen (models load first)
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        for path, needle in (("/", b"<canvas"), ("/static/app.js", b"fetch"), ("/docs", b"swagger-ui"),
                             ("/docs-assets/swagger-ui-bundle.js", b"SwaggerUIBundle"), ("/openapi.json", b"openapi")):
            body = urllib.request.urlopen(base + path, timeout=10).read()
            assert needle in body, path
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_pipx_install_gives_the_command(tmp_path, mnist):
    """``pipx install .`` as the docs say: its own environment, dependencies from the package index."""
    pytest.importorskip("pipx")
    from PIL import Image

    import digitnet

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"),
               PIPX_MAN_DIR=str(tmp_path / "man"))
    _run([sys.executable, "-m", "pipx", "install", ROOT], cwd=tmp_path, env=env, timeout=900)
    command = tmp_path / "bin" / "digitnet"
    assert _run([command, "--version"], cwd=tmp_path, env=env).split() == ["digitnet", digitnet.__version__]
    Image.fromarray(255 - mnist.test.images[0]).resize((112, 112)).save(tmp_path / "digit.png")
    out = _run([command, "predict", "digit.png"], cwd=tmp_path, env=env)
    assert out.startswith(f"digit.png: {mnist.test.labels[0]}")
