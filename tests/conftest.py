"""Shared fixtures: tiny SEA-LION-shaped GGUF models on the real llama.cpp runtime."""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb backtrace on a ggml abort
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# the tiny models are cached in the checkout (ignored by git), shared by test processes
os.environ.setdefault(
    "SEALION_TEST_CACHE",
    str(os.path.join(os.path.dirname(__file__), "..", ".cache", "tiny-models")),
)

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from xdist.scheduler import LoadScheduling  # noqa: E402

from sealion_agents import testing as tiny_models  # noqa: E402
from tests.suite_model import suite_gguf, suite_hf_folder  # noqa: E402

#: llama.cpp settings for tests: one thread each (two threads collapse under load).
LLAMA_TEST_KWARGS = {"n_threads": 1, "n_threads_batch": 1, "n_batch": 512}

VARIANTS = ("writes", "prefilled")


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    """Both chat-template variants: the model writes ``<think>``, or the prompt holds it."""
    return str(request.param)


@pytest.fixture(scope="session")
def tiny_gguf_paths() -> dict[str, Path]:
    """The generated tiny GGUF of each template variant (cached on disk)."""
    return {name: tiny_models.tiny_gguf(name) for name in VARIANTS}


@pytest.fixture(scope="session")
def gguf_backends(tiny_gguf_paths: dict[str, Path]) -> Iterator[dict[str, object]]:
    """One loaded llama.cpp backend per variant, shared by the whole session."""
    from sealion_agents.backends.llamacpp import LlamaCppBackend

    backends = {
        name: LlamaCppBackend(path, **LLAMA_TEST_KWARGS) for name, path in tiny_gguf_paths.items()
    }
    yield backends
    for backend in backends.values():
        backend.close()


# -- vLLM in-process and OpenAI-compatible servers (test_vllm_backend, test_openai_backend) --


@pytest.fixture(scope="session")
def vllm_engine() -> Iterator[object]:
    """One real in-process vLLM engine on the tiny "writes" model for the whole session.

    It serves ``tests.suite_model`` (the scripted agent and langchain-tests' tool prompts):
    ordinary prompts get the default script.
    """
    from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

    for key, value in VLLM_ENV.items():
        os.environ.setdefault(key, value)
    from sealion_agents.backends.vllm import guard_kernel_scan

    guard_kernel_scan()
    import vllm

    llm = vllm.LLM(model=str(suite_hf_folder("writes")), **VLLM_ENGINE_KWARGS)
    yield llm
    llm.llm_engine.engine_core.shutdown()


@pytest.fixture(scope="session")
def more_vllm_engines() -> Callable[[Path], object]:
    """In-process vLLM engines on more tiny model folders, one per folder, kept to the end.

    Never freed during the session: freeing an in-process engine (``del`` or shutdown) tears
    down process-wide parallel state that the session's other engines still use (their next
    batch then waits forever).
    """
    from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

    engines: dict[Path, object] = {}

    def engine(folder: Path) -> object:
        if folder not in engines:
            for key, value in VLLM_ENV.items():
                os.environ.setdefault(key, value)
            from sealion_agents.backends.vllm import guard_kernel_scan

            guard_kernel_scan()
            import vllm

            engines[folder] = vllm.LLM(model=str(folder), **VLLM_ENGINE_KWARGS)
        return engines[folder]

    return engine


@pytest.fixture(scope="session")
def nemotron_h_vllm() -> Any:
    """ChatSeaLion on in-process vLLM on the Nemotron-H family folder, under its profile (whose
    CPU settings turn prefix caching off), kept to the session's end (see more_vllm_engines)."""
    from sealion_agents import ChatSeaLion
    from sealion_agents.backends.vllm import guard_kernel_scan
    from sealion_agents.testing.families import tiny_family_hf_folder
    from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

    for key, value in VLLM_ENV.items():
        os.environ.setdefault(key, value)
    guard_kernel_scan()
    return ChatSeaLion.from_vllm(
        tiny_family_hf_folder("nemotron"),
        profile="nemotron-sea-lion-v4.8",
        temperature=0,
        **VLLM_ENGINE_KWARGS,
    )


@pytest.fixture(scope="session")
def vllm_backends(vllm_engine: object) -> dict[str, object]:
    """A vLLM backend per template variant, sharing the one engine (templates differ)."""
    from sealion_agents.backends.vllm import VLLMBackend

    return {
        name: VLLMBackend(llm=vllm_engine, name="sealion-tiny", chat_template=template)
        for name, template in tiny_models.TEMPLATES.items()
    }


@pytest.fixture(scope="session")
def vllm_servers() -> Iterator[dict[str, object]]:
    """Real vLLM OpenAI servers on 127.0.0.1, started together and stopped by pid.

    "vllm": no reasoning parser (reasoning inline in content); "vllm-r1":
    ``--reasoning-parser deepseek_r1`` (reasoning in the ``reasoning`` field). Both serve the
    suite model (``tests.suite_model``: the default script for ordinary prompts).
    """
    from sealion_agents.testing.servers import vllm_server

    folder = suite_hf_folder("writes")
    servers = {
        "vllm": vllm_server(folder, reasoning_parser=None, name="vllm-plain"),
        "vllm-r1": vllm_server(folder, reasoning_parser="deepseek_r1", name="vllm-r1"),
    }
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait(timeout=300)
        yield servers  # type: ignore[misc]
    finally:
        for server in servers.values():
            server.stop()


#: The llama.cpp test server's API key (a test value, not a secret).
LLAMACPP_TEST_KEY = "sk-test-not-a-secret-4242"


@pytest.fixture(scope="session")
def llamacpp_server() -> Iterator[object]:
    """A real llama-cpp-python server serving each variant as "<variant>-on" / "<variant>-off".

    Its per-request ``chat_template_kwargs`` are ignored, so the thinking mode is fixed per
    model alias in the server's config file. It serves the suite model
    (``tests.suite_model``: the default script for ordinary prompts).
    """
    from sealion_agents.testing.servers import llamacpp_server as make

    models = {
        f"{variant}-{mode}": (suite_gguf(variant), mode)
        for variant in VARIANTS
        for mode in ("on", "off")
    }
    server = make(models, api_key=LLAMACPP_TEST_KEY)
    try:
        server.start().wait(timeout=120)
        yield server
    finally:
        server.stop()


def _same_prompt_as_writes(item: pytest.Item) -> bool:
    """A "prefilled" case with thinking off: both templates render ``<think></think>`` then."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if params.get("variant") != "prefilled":
        return False
    return params.get("thinking") is False or params.get("options") == {"thinking": False}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the template-variant axis only where the templates differ.

    With thinking off, "writes" and "prefilled" render the same prompt token for token (see
    ``testing.TEMPLATES``; ``test_tiny_models`` checks the rendering of both), so the
    "prefilled" copy of such a case would repeat the "writes" one exactly.
    """
    repeats = [item for item in items if _same_prompt_as_writes(item)]
    if repeats:
        config.hook.pytest_deselected(items=repeats)
        items[:] = [item for item in items if not _same_prompt_as_writes(item)]
    worker = getattr(config, "workerinput", {})
    listing = worker.get(_LISTING_KEY)
    if listing and int(worker["workerid"][2:]) < worker["workercount"]:
        # a first xdist worker (not a replacement): tell the scheduler the tests on vLLM
        tmp = Path(f"{listing}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([item.nodeid for item in items if uses_vllm(item)]))
        os.replace(tmp, listing)


# -- two workers, one of them holding vLLM ---------------------------------------------------
# The suite runs on two xdist workers. vLLM's engines (in-process) and servers are built once
# per worker and kept to the session's end, so every test on vLLM goes to ONE worker, which
# builds them once; the other worker runs the rest. xdist's own grouping (--dist loadgroup)
# cannot do this here: with pytest 9 its group mark no longer reaches the scheduler, and its
# scope schedulers rerun a test that crashed its worker on every replacement worker.

#: Fixtures that hold vLLM (an in-process engine or an OpenAI server on vLLM).
VLLM_FIXTURES = frozenset(
    {"vllm_engine", "more_vllm_engines", "vllm_backends", "vllm_servers", "nemotron_h_vllm"}
    | {"rules_engine", "rules_server"}  # test_qa_chain's
)
_LISTING_KEY = "sealion_vllm_tests"


def uses_vllm(item: pytest.Item) -> bool:
    """A test on vLLM: it uses a vLLM fixture, names vLLM (its file, class, name or a
    parameter's id), or is marked ``vllm`` (it reaches vLLM through ``getfixturevalue``)."""
    return (
        bool(VLLM_FIXTURES & set(getattr(item, "fixturenames", ())))
        or "vllm" in item.nodeid.lower()
        or item.get_closest_marker("vllm") is not None
    )


class VLLMWorkerScheduling(LoadScheduling):  # type: ignore[misc]
    """xdist's "load" scheduling, except that the tests on vLLM all go to one worker.

    That worker is the first to ask for tests; it takes vLLM tests before any other. If it
    crashes, the next worker to ask takes over (the crashed test fails, as with "load").
    The vLLM tests are read from the listing file the workers write at collection.
    """

    def __init__(self, config: pytest.Config, log: Any, listing: Path) -> None:
        super().__init__(config, log)
        self.listing = listing
        self.on_vllm: set[int] | None = None
        self.owner: Any = None

    def _vllm_indexes(self) -> set[int]:
        if self.on_vllm is None:
            try:
                names = set(json.loads(self.listing.read_text()))
            except FileNotFoundError:
                names = set()
            assert self.collection is not None
            self.on_vllm = {i for i, nodeid in enumerate(self.collection) if nodeid in names}
        return self.on_vllm

    def _send_tests(self, node: Any, num: int) -> None:
        on_vllm = self._vllm_indexes()
        if self.owner not in self.node2pending:  # none yet, or it crashed
            self.owner = node
        others = [i for i in self.pending if i not in on_vllm]
        if node is self.owner:
            # at least two: a worker runs a test only once it knows the next one (or that
            # none comes), and no other worker may take the vLLM tests left pending
            num = max(num, 2)
            chosen = [i for i in self.pending if i in on_vllm][:num]
            chosen += others[: num - len(chosen)]
        else:
            chosen = others[:num]
        if chosen:
            taken = set(chosen)
            self.pending[:] = [i for i in self.pending if i not in taken]
            self.node2pending[node].extend(chosen)
            node.send_runtest_some(chosen)

    def check_schedule(self, node: Any, duration: float = 0) -> None:
        super().check_schedule(node, duration=duration)
        if not self.pending:  # all handed out: a worker left idle by the split can stop too
            for other in self.nodes:
                if not other.shutting_down:
                    other.shutdown()


def _listing_path(config: pytest.Config) -> Path:
    return Path(tempfile.gettempdir()) / f"sealion-pytest-{os.getpid()}-vllm-tests.json"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Controller: each worker writes its listing of vLLM tests to the same file."""
    node.workerinput[_LISTING_KEY] = str(_listing_path(node.config))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Controller: "load" scheduling with the vLLM tests on one worker."""
    if config.getvalue("dist") != "load":
        return None
    return VLLMWorkerScheduling(config, log, _listing_path(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _listing_path(config).unlink(missing_ok=True)
