"""The Colab notebook runs top to bottom on CPU with a tiny random generator and a short projection."""
import pathlib

import numpy as np
import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "sampling.ipynb"
TINY_SETTINGS = dict(TINY="1", SEEDS="0-3", ROW_SEEDS="1,2", COL_SEEDS="3,4", VIDEO_SEEDS="0-2", W_FRAMES="2",
                     PROJECTION_STEPS="3", W_AVG_SAMPLES="200")


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    for name, value in TINY_SETTINGS.items():
        monkeypatch.setenv("SAMPLING_" + name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    images = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) >= 5  # grid, style mixing, interpolation rows, directions, projection
    assert any(path.stem == "lerp" for path in tmp_path.iterdir())
    with np.load(tmp_path / "projected_w.npz") as data:
        assert data["w"].shape[0] == 1
    assert (tmp_path / "generator.msgpack").is_file()
