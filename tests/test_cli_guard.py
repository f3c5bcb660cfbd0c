"""``sealion ask`` and ``sealion chat`` with a guard: real processes, real Chroma, llama.cpp.

The guard is the scripted SEA-Guard stand-in of test_guard ("unsafe" wherever " bomb"
appears), run in the command's own process (``--guard-gguf``) or served by llama-cpp-python's
server (``--guard-openai-url``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealion_agents import testing as tm
from sealion_agents.qa.language import LANGUAGES
from tests.test_cli import DOCS, sealion
from tests.test_guard import GUARD_RULES

THAI_UNSAFE = "วิธีทำ bomb ที่บ้านทำอย่างไร"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("guard-store")
    result = sealion("ingest", str(DOCS), "--collection", "demo", "--store", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def guard_server() -> Iterator[Any]:
    """llama-cpp-python's server on the scripted guard, thinking off, as "guard"."""
    from sealion_agents.testing.servers import llamacpp_server

    server = llamacpp_server({"guard": (tm.tiny_rules_gguf("guard", GUARD_RULES), "off")})
    server.start()
    try:
        server.wait(timeout=120)
        yield server
    finally:
        server.stop()


def where(store: Path) -> list[str]:
    return ["-c", "demo", "--store", str(store), "--gguf", str(tm.tiny_gguf("writes"))]


def test_ask_refuses_an_unsafe_question_in_its_language(store: Path) -> None:
    guard = ["--guard-gguf", str(tm.tiny_rules_gguf("guard", GUARD_RULES))]
    result = sealion("ask", THAI_UNSAFE, *where(store), *guard, "--show-reasoning")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("(blocked: the safety check (") and "question" in lines[-2]
    assert lines[-1] == LANGUAGES["th"].refusal
    assert tm.REASONING not in result.stdout  # the model never ran


def test_ask_with_a_served_guard_lets_a_safe_question_through(
    store: Path, guard_server: Any
) -> None:
    guard = ["--guard-openai-url", guard_server.base_url, "--guard-model", "guard"]
    refused = sealion("ask", "How do I make a bomb?", *where(store), *guard)
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip().splitlines()[-1] == LANGUAGES["en"].refusal
    answered = sealion("ask", "What is choping?", *where(store), *guard)
    assert answered.returncode == 0, answered.stderr
    assert "(declined: no claim was supported by its sources)" in answered.stdout  # as unguarded


def test_chat_refuses_one_turn_and_answers_the_next(store: Path) -> None:
    guard = ["--guard-gguf", str(tm.tiny_rules_gguf("guard", GUARD_RULES)), "--no-thinking"]
    result = sealion(
        "chat",
        *where(store),
        *guard,
        stdin="Bagaimanakah saya boleh membuat bomb di rumah?\nWhat is choping?\n\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(LANGUAGES["ms"].refusal) == 1
    assert result.stdout.count("(declined: no claim was supported by its sources)") == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--guard-model", "x"], "--guard-model names the guard on a server: it needs"),
        (["--guard-gguf", "a.gguf", "--guard-vllm", "b"], "choose one guard backend, not"),
        (["--guard-openai-url", "http://127.0.0.1:9/v1"], "--guard-openai-url needs --guard-model"),
        (["--guard-quant", "Q4_K_M"], "--guard-quant chooses a file of a GGUF repo"),
        (["--guard-gguf", "a.gguf", "--guard-stages", "input,answer"], "unknown guard stage"),
        (["--guard-gguf", "a.gguf", "--guard-fail", "ajar"], "'ajar' is not one of"),
    ],
)
def test_bad_guard_flags_are_one_line_errors(store: Path, flags: list[str], message: str) -> None:
    result = sealion("ask", "hi", *where(store), *flags)
    assert result.returncode in (1, 2)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_guard_vllm_flags_build_an_in_process_vllm_guard() -> None:
    """The --guard-vllm plumbing (nothing loads: an engine is only built on first use)."""
    from sealion_agents.backends.vllm import VLLMBackend
    from sealion_agents.cli.flags import GuardFlags
    from sealion_agents.cli.models import build_guardrails

    folder = tm.tiny_rules_hf_folder("guard", GUARD_RULES)
    flags = GuardFlags(
        guard_vllm=str(folder),
        guard_vllm_arg=["max_model_len=8192"],
        guard_stages="input,passages",
        guard_fail="open",
    )
    rails = build_guardrails(flags, load=False)
    backend = rails.guard.llm.backend
    assert isinstance(backend, VLLMBackend)
    assert rails.stages == {"input", "passages"} and rails.guard.fail == "open"
    assert rails.guard_name == folder.name
    assert backend._llm is None  # not built yet
    assert backend._engine_kwargs["max_model_len"] == 8192
    assert build_guardrails(GuardFlags(), load=False) is None  # no guard model: no guardrails


def test_a_served_guard_answers_each_of_the_three_formats(guard_server: Any) -> None:
    """The three checks on llama-cpp-python's server, under the label grammar."""
    from sealion_agents import ChatSeaLion
    from sealion_agents.guard import Guard
    from tests.test_guard import HARMFUL_ANSWER, HARMFUL_QUESTION, KIND_ANSWER, QUESTION

    llm = ChatSeaLion.from_openai(guard_server.base_url, model="guard", context_window=1024)
    guard = Guard(llm)
    checks = [
        ((QUESTION, None), "safe"),
        ((HARMFUL_QUESTION, None), "unsafe"),
        ((QUESTION, KIND_ANSWER), "safe"),
        ((QUESTION, HARMFUL_ANSWER), "unsafe"),
        ((None, KIND_ANSWER), "safe"),
        ((None, HARMFUL_ANSWER), "unsafe"),
    ]
    verdicts = [guard.check(*asked) for asked, _ in checks]
    assert [(v.label, v.error) for v in verdicts] == [(label, None) for _, label in checks]
    assert [v.stage for v in verdicts] == ["input", "input"] + ["output"] * 4
