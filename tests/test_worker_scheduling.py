"""The suite's scheduler (``conftest.VLLMWorkerScheduling``) on a scratch project.

Every test on vLLM goes to one worker; a worker runs a test only once it knows the next one
(or that none comes), so a selection of vLLM tests alone must still reach the end: it hung
when the owner held one test and the other worker could take none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = """
from tests.conftest import (  # the suite's scheduler and its hooks
    pytest_collection_modifyitems,
    pytest_configure_node,
    pytest_unconfigure,
    pytest_xdist_make_scheduler,
)
"""


@pytest.mark.parametrize(("on_vllm", "others"), [(2, 0), (3, 1)])
def test_any_selection_runs_to_the_end_on_two_workers(
    tmp_path: Path, on_vllm: int, others: int
) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    tests = [f"def test_vllm_{i}():\n    pass\n" for i in range(on_vllm)]
    tests += [f"def test_other_{i}():\n    pass\n" for i in range(others)]
    (tmp_path / "test_scratch.py").write_text("\n\n".join(tests))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{on_vllm + others} passed" in done.stdout, done.stdout
