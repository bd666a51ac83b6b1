"""The notebook runs top to bottom (a quick budget: DIGITNET_NOTEBOOK_FAST=1)."""

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install '.[notebook]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install '.[notebook]')")
pytest.importorskip("ipykernel", reason="ipykernel not installed (pip install '.[notebook]')")
pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install '.[plot]')")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "digit_recognizer.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_NOTEBOOK_FAST", "1")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                                   # raises CellExecutionError on any failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 9                            # every plot was drawn
    text = "".join(o.get("text", "") for o in outputs)
    assert "prediction: 7" in text and "read: 2048" in text
