"""Every notebook runs the way users run it: cell by cell in a Jupyter kernel (nbclient).

The notebooks are stored with the outputs of such a run (``make notebooks`` refreshes them), so
they read well where they are browsed; here each one is executed again from a copy, offline,
and must finish without an error output and print what it shows: every cell's printed text and
results equal the stored ones (the scripted tiny models are deterministic), except in cells
tagged ``sampled`` (a real model sampling its reply).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RANDOM = {
    re.compile(r"call_[0-9a-f]{24}"): "call_<id>",
    re.compile(re.escape(tempfile.gettempdir()) + r"/[^/\s'\"]+"): "<tmp>",
}
"""Tool-call ids and temporary folders are random; everything else the scripted models print
is not."""


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel(notebook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SEALION_") and k != "SEALION_TEST_CACHE"]:
        monkeypatch.delenv(name)  # the offline path, whatever the machine has set
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(notebook, as_version=4)
    shown = [_shown(c) for c in nb.cells]
    stored = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") is not None for c in stored)
    assert any(c.get("outputs") for c in stored), f"{notebook.name} is stored without outputs"
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    for index, (cell, before) in enumerate(zip(nb.cells, shown, strict=True)):
        if cell.cell_type == "code" and "sampled" not in cell.metadata.get("tags", []):
            assert _shown(cell) == before, f"{notebook.name}, cell {index}: output changed"


def _shown(cell: nbformat.NotebookNode) -> str:
    """What a code cell prints and returns (stdout and text results; warnings aside), with
    what is random each run (``RANDOM``) written the same way."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            parts.append(output.get("text", ""))
        elif output.get("output_type") == "execute_result":
            parts.append(output.get("data", {}).get("text/plain", ""))
    text = "".join(parts)
    for pattern, stands_for in RANDOM.items():
        text = pattern.sub(stands_for, text)
    return text
