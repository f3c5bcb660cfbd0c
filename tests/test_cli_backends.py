"""The ``sealion`` command against each kind of backend and store it names by flag.

``--chroma-url`` (a real ``chroma run`` server), ``--vllm`` (in-process vLLM, in a child
process) and ``--openai-url`` (llama-cpp-python's OpenAI-compatible server), all on one scripted
tiny model that answers the question with a cited sentence the verifier accepts, so each run
prints a grounded answer and its numbered source. The Chroma and llama.cpp commands run
in-process through typer's ``CliRunner``; vLLM runs in a child process, which takes its engine
with it when it exits (an engine shut down inside the test process would tear down state that
the session's own vLLM engine shares).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealion_agents import testing as tm
from sealion_agents.cli import app
from sealion_agents.testing.servers import (
    VLLM_ENGINE_KWARGS,
    VLLM_ENV,
    Server,
    chroma_server,
    llamacpp_server,
)

QUESTION = "What does choping mean?"
REASONING = "Passage one defines it."
ANSWER = "Choping means saving a seat with tissues [1]."
DOCS = {
    "choping.md": "Choping means reserving a seat at a hawker centre with a packet of tissues.",
    "satay.md": "Satay is grilled meat on skewers, served with peanut sauce.",
}
RULES = [
    tm.Rule(tm.default_chains()[0]),
    tm.Rule(  # the answer step (" numbered") for this question (" mean")
        [tm.NEWLINES_ID, tm.THINK_OPEN_ID, *tm.encode(REASONING), tm.THINK_CLOSE_ID]
        + [*tm.encode(ANSWER), tm.EOT_ID],
        when={" numbered", " mean"},
    ),
    tm.Rule(  # the verifier (" claim") shown this answer (" tissues")
        [tm.THINK_CLOSE_ID, *tm.encode("SUPPORTED"), tm.EOT_ID], when={" claim", " tissues"}
    ),
]


def expected_output(docs: Path) -> list[str]:
    """The answer, then its one source: ``[1] PATH: TEXT``."""
    return [ANSWER, f"[1] {docs / 'choping.md'}: {DOCS['choping.md']}"]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (``chroma run``) on 127.0.0.1; its URL."""
    server = chroma_server(tmp_path_factory.mktemp("chroma-server")).start()
    try:
        server.wait(60)
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def collection(chroma: str, docs: Path) -> str:
    """The documents ingested into collection "hawker" on the Chroma server."""
    result = sealion("ingest", str(docs), "-c", "hawker", "--chroma-url", chroma)
    assert result.exit_code == 0, result.output
    return "hawker"


def sealion(*args: str, stdin: str | None = None) -> object:
    """Run the command in-process (wide output, so no line is wrapped)."""
    from sealion_agents import cli

    width = cli.out.width
    cli.out.width = 400
    try:
        return CliRunner().invoke(app, list(args), input=stdin)
    finally:
        cli.out.width = width


def lines(output: str) -> list[str]:
    return [line.rstrip() for line in output.splitlines() if line.strip()]


def test_ingest_collections_ask_and_chat_on_a_chroma_server(
    chroma: str, collection: str, docs: Path
) -> None:
    again = sealion("ingest", str(docs), "-c", collection, "--chroma-url", chroma)
    assert again.exit_code == 0, again.output
    assert "0 chunks added, 0 removed, 0 file(s) failed" in again.output
    assert f"collection 'hawker' in {chroma}" in again.output.replace("\n", "")
    listed = sealion("collections", "--chroma-url", chroma)
    assert listed.exit_code == 0, listed.output
    row = next(line for line in lines(listed.output) if "hawker" in line)
    assert [cell.strip() for cell in row.split("│")[1:3]] == ["hawker", str(len(DOCS))]
    gguf = str(tm.tiny_rules_gguf("cli-backends", RULES))
    asked = sealion("ask", QUESTION, "-c", collection, "--chroma-url", chroma, "--gguf", gguf)
    assert asked.exit_code == 0, asked.output
    assert lines(asked.stdout) == expected_output(docs)
    chatted = sealion(
        "chat", "-c", collection, "--chroma-url", chroma, "--gguf", gguf, stdin=f"{QUESTION}\n\n"
    )
    assert chatted.exit_code == 0, chatted.output
    assert lines(chatted.stdout) == expected_output(docs)


def test_a_chroma_server_that_does_not_answer_is_a_clear_error(tmp_path: Path) -> None:
    from sealion_agents.testing.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = sealion("collections", "--chroma-url", url)
    assert result.exit_code == 1
    assert f"cannot reach the Chroma server at {url}" in result.stderr
    assert "Traceback" not in result.output


def test_delete_a_collection_on_a_chroma_server(chroma: str, docs: Path) -> None:
    made = sealion("ingest", str(docs / "satay.md"), "-c", "gone", "--chroma-url", chroma)
    assert made.exit_code == 0, made.output
    deleted = sealion("collections", "--chroma-url", chroma, "--delete", "gone")
    assert deleted.exit_code == 0 and "deleted collection 'gone'" in deleted.stdout
    listed = sealion("collections", "--chroma-url", chroma)
    assert "gone" not in listed.stdout
    missing = sealion("ask", QUESTION, "-c", "gone", "--chroma-url", chroma, "--gguf", "x.gguf")
    assert missing.exit_code == 1
    assert f"no collection named 'gone' in {chroma}" in missing.stderr


def test_ask_through_an_openai_compatible_server(chroma: str, collection: str, docs: Path) -> None:
    server: Server = llamacpp_server(
        {"cli-on": (tm.tiny_rules_gguf("cli-backends", RULES), "on")}, name="llamacpp-cli"
    )
    try:
        server.start().wait(timeout=120)
        asked = sealion(
            "ask", QUESTION, "-c", collection, "--chroma-url", chroma,
            "--openai-url", server.base_url, "--model", "cli-on", "--context-window", "1024",
            "--max-tokens", "256", "--show-reasoning",
        )  # fmt: skip
    finally:
        server.stop()
    assert asked.exit_code == 0, asked.output
    assert lines(asked.stdout) == [REASONING, *expected_output(docs)]


def test_ask_on_in_process_vllm(chroma: str, collection: str, docs: Path) -> None:
    """``--vllm MODEL_DIR`` with the tests' CPU engine settings as ``--vllm-arg KEY=VALUE``
    (eager, small context and KV cache): the engine starts in the command's process."""
    folder = tm.tiny_rules_hf_folder("cli-backends", RULES)
    env = {**os.environ, **VLLM_ENV, "COLUMNS": "400"}
    engine = [f"--vllm-arg={key}={json.dumps(value)}" for key, value in VLLM_ENGINE_KWARGS.items()]
    result = subprocess.run(
        [sys.executable, "-c", "from sealion_agents.cli import main; main()", "ask", QUESTION,
         "-c", collection, "--chroma-url", chroma, "--vllm", str(folder), *engine,
         "--max-tokens", "256"],
        capture_output=True, text=True, timeout=600, env={**env, "NO_COLOR": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert lines(result.stdout) == expected_output(docs)
