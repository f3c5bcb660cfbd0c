"""Shared fixtures: tiny SEA-LION-shaped GGUF models on the real llama.cpp runtime."""

from __future__ import annotations

import os

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

import pytest  # noqa: E402

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
