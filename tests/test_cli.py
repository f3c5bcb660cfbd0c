"""The ``sealion`` command end to end: real processes, a real Chroma folder, llama.cpp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealion_agents import testing as tiny_models

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "examples" / "docs"


def sealion(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from sealion_agents.cli import main; main()", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "NO_COLOR": "1", **env},
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store")
    result = sealion("ingest", str(DOCS), "--collection", "demo", "--store", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


def test_ingest_reports_each_file_and_is_idempotent(store: Path) -> None:
    again = sealion("ingest", str(DOCS), "--collection", "demo", "--store", str(store))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged") == len(list(DOCS.glob("*.md")))
    assert "0 chunks added, 0 removed, 0 file(s) failed" in again.stdout


def test_ingest_reports_a_bad_file_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Durian is the king of fruits.", encoding="utf-8")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    result = sealion(
        "ingest", str(tmp_path), "--collection", "mixed", "--store", str(tmp_path / "s")
    )
    assert result.returncode == 3, result.stderr  # partial failure: its own exit status
    assert "good.txt" in result.stdout and "added" in result.stdout
    assert "bad.pdf" in result.stdout
    assert "1 file(s) failed" in result.stdout
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    again = sealion(
        "ingest", str(tmp_path), "--collection", "mixed", "--store", str(tmp_path / "s")
    )
    assert "photo.jpg" in again.stdout and "skipped: not a supported file type" in again.stdout
    only_bad = sealion(
        "ingest", str(tmp_path / "bad.pdf"), "--collection", "m2", "--store", str(tmp_path / "s")
    )
    assert only_bad.returncode == 1  # nothing could be ingested


def test_collections_lists_and_deletes(store: Path, tmp_path: Path) -> None:
    listed = sealion("collections", "--store", str(store))
    assert "demo" in listed.stdout and "multilingual-e5-small" in listed.stdout
    copy = tmp_path / "copy"
    sealion("ingest", str(DOCS / "jeepney_tl.md"), "--collection", "gone", "--store", str(copy))
    deleted = sealion("collections", "--store", str(copy), "--delete", "gone")
    assert "deleted collection 'gone'" in deleted.stdout
    assert "gone" not in sealion("collections", "--store", str(copy)).stdout


def test_ask_missing_collection_is_a_clear_error(store: Path) -> None:
    result = sealion("ask", "hi", "--collection", "nope", "--store", str(store), "--gguf", "x.gguf")
    assert result.returncode == 1
    assert "no collection named 'nope'" in result.stderr
    assert "sealion ingest PATH --collection nope" in result.stderr


def test_ask_without_a_model_says_how_to_choose(store: Path) -> None:
    env = {k: "" for k in ("SEALION_GGUF", "SEALION_VLLM", "SEALION_OPENAI_URL")}
    result = sealion("ask", "hi", "--collection", "demo", "--store", str(store), **env)
    assert result.returncode == 1
    assert "choose a model: --gguf aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF" in result.stderr


def test_ask_with_a_model_that_cannot_load(store: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    result = sealion("ask", "hi", "-c", "demo", "--store", str(store), "--gguf", str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr


def test_ask_streams_then_declines_an_unsupported_answer(store: Path) -> None:
    """The default tiny model answers without citations: the verifier must refuse it."""
    gguf = tiny_models.tiny_gguf("writes")
    result = sealion(
        "ask",
        "What is choping?",
        "-c",
        "demo",
        "--store",
        str(store),
        "--gguf",
        str(gguf),
        "--show-reasoning",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == tiny_models.REASONING
    assert lines[1] == tiny_models.ANSWER
    assert lines[2] == "(declined: no claim was supported by its sources)"
    assert lines[3] == "The documents do not contain the answer to this question."


def test_chat_reads_questions_from_stdin(store: Path) -> None:
    gguf = tiny_models.tiny_gguf("writes")
    result = sealion(
        "chat",
        "-c",
        "demo",
        "--store",
        str(store),
        "--gguf",
        str(gguf),
        "--no-thinking",
        stdin="What is choping?\nAnd satay?\n\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(tiny_models.ANSWER) == 2
    assert result.stdout.count("(declined: no claim was supported by its sources)") == 2


def test_ask_and_chat_against_a_server_that_hides_its_window(store: Path, llamacpp_server) -> None:
    """llama-cpp-python's server reports no context window: the error names the flag, and
    --context-window (or SEALION_CONTEXT_WINDOW) makes ask and chat work."""
    from tests.conftest import LLAMACPP_TEST_KEY

    where = ["-c", "demo", "--store", str(store), "--max-tokens", "256"]  # the window is 1024
    server = ["--openai-url", llamacpp_server.base_url, "--model", "writes-on"]
    key = {"SEALION_API_KEY": LLAMACPP_TEST_KEY}
    refused = sealion("ask", "What is choping?", *where, *server, **key)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "does not report its context window: pass --context-window TOKENS" in refused.stderr
    no_room = sealion(  # the answer's 1024 tokens fill the window: an error, not a decline
        "ask", "What is choping?", "-c", "demo", "--store", str(store), *server,
        "--context-window", "1024", **key,
    )  # fmt: skip
    assert no_room.returncode == 1 and "context window of 1024 tokens" in no_room.stderr
    asked = sealion("ask", "What is choping?", *where, *server, "--context-window", "1024", **key)
    assert asked.returncode == 0, asked.stderr
    assert tiny_models.ANSWER in asked.stdout
    chatted = sealion(
        "chat", *where, *server, stdin="What is choping?\n\n", SEALION_CONTEXT_WINDOW="1024", **key
    )
    assert chatted.returncode == 0, chatted.stderr
    assert tiny_models.ANSWER in chatted.stdout


def test_vllm_args_are_json_values_or_text() -> None:
    from sealion_agents.cli.console import CliError
    from sealion_agents.cli.models import vllm_engine_kwargs

    pairs = ["enforce_eager=true", "max-model-len=1024", "dtype=float32", 'hf_overrides={"a": 1}']
    assert vllm_engine_kwargs(pairs) == {
        "enforce_eager": True,
        "max_model_len": 1024,
        "dtype": "float32",
        "hf_overrides": {"a": 1},
    }
    for bad in ("max_model_len", "=1024", "max model len=1"):
        with pytest.raises(CliError, match="is not KEY=VALUE"):
            vllm_engine_kwargs([bad])


def test_a_bad_vllm_arg_is_a_one_line_error(store: Path) -> None:
    where = ["-c", "demo", "--store", str(store)]
    bad = sealion("ask", "hi", *where, "--vllm", "some/model", "--vllm-arg", "max_model_len")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: --vllm-arg 'max_model_len' is not KEY=VALUE (e.g. --vllm-arg max_model_len=8192)"
    ]
    alone = sealion("ask", "hi", *where, "--gguf", "x.gguf", "--vllm-arg", "max_model_len=1")
    assert alone.returncode == 1 and "--vllm-arg" in alone.stderr and "needs --vllm" in alone.stderr


def test_serve_flags_are_generated_from_serve_config() -> None:
    """Each ServeConfig field with a flag is one; MB flags arrive as bytes; bounds and choices
    are the fields' own."""
    from typer.testing import CliRunner

    from sealion_agents.cli import app
    from sealion_agents.cli.serve import ServerSettings
    from sealion_agents.serve.config import ServeConfig

    shown = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0
    for flag in ["--name", "--reasoning-field", "--max-upload-mb", "--max-body-mb",
                 "--rate-limit", "--key-parallel", "--max-parallel", "--queue-size",
                 "--data-dir", "--keys-file", "--host", "--port", "--vllm-arg",
                 "--default-language", "--languages"]:  # fmt: skip
        assert flag in shown.stdout
    assert ServeConfig.model_fields["queue_size"].description in shown.stdout
    assert "--retrieval-k" not in shown.stdout  # fields marked Flag(None) have none
    settings = ServerSettings.from_flags({"max_body_bytes": 2.0, "model_id": "m"}).values
    assert settings == {"max_body_bytes": 2 * 1024 * 1024, "model_id": "m"}
    for flags in (["--reasoning-field", "thoughts"], ["--queue-size", "-1"],
                  ["--max-body-mb", "0.0001"], ["--default-language", "klingon"],
                  ["--languages", "ms,xx"]):  # fmt: skip
        refused = CliRunner().invoke(app, ["serve", *flags])
        assert refused.exit_code == 2, refused.output
        assert flags[0] in refused.output
    repeated = ["serve", "--languages", "ms", "--languages", "xx"]
    refused = CliRunner().invoke(app, repeated, env={"COLUMNS": "300"})
    assert "unknown language code 'xx': use one of en, id, ms" in refused.output


def test_user_errors_are_told_from_bugs_by_type(capsys: pytest.CaptureFixture[str]) -> None:
    """Our errors print one line and exit 1; anything else is a bug and keeps its traceback."""
    import typer

    from sealion_agents import ServerUnavailableError
    from sealion_agents.cli.console import friendly_errors

    with pytest.raises(typer.Exit) as exit_info, friendly_errors():
        raise ServerUnavailableError("http://127.0.0.1:9/v1 did not answer")
    assert exit_info.value.exit_code == 1
    assert "error: http://127.0.0.1:9/v1 did not answer" in capsys.readouterr().err

    class ServerLookingBug(RuntimeError):  # a name that once matched "Server": still a bug
        pass

    with pytest.raises(ServerLookingBug), friendly_errors():
        raise ServerLookingBug("a bug")


def test_collection_names_in_thai_and_bad_names(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    thai = "คู่มือ พนักงาน"
    made = sealion("ingest", str(DOCS / "jeepney_tl.md"), "--collection", thai, "--store", store)
    assert made.returncode == 0, made.stderr
    listed = sealion("collections", "--store", store)
    assert thai in listed.stdout
    bad = sealion("ingest", str(DOCS / "jeepney_tl.md"), "--collection", "../x", "--store", store)
    assert bad.returncode == 1
    assert "is not allowed" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2
    gone = sealion("collections", "--delete", thai, "--store", store)
    assert gone.returncode == 0 and "deleted" in gone.stdout


def test_ingest_a_web_page_by_url(tmp_path: Path) -> None:
    import http.server
    from functools import partial

    from tests.local_http import local_http_server

    site = tmp_path / "site"
    site.mkdir()
    (site / "leave.html").write_text(
        "<html><body><p>Cuti tahunan ialah empat belas hari setahun.</p></body></html>",
        encoding="utf-8",
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with local_http_server(handler) as base:
        store = str(tmp_path / "s")
        good = sealion("ingest", f"{base}/leave.html", "-c", "web", "--store", store)
        assert good.returncode == 0, good.stderr
        assert f"{base}/leave.html" in good.stdout and "added" in good.stdout
        mixed = sealion(
            "ingest", f"{base}/leave.html", f"{base}/missing.html", "-c", "web", "--store", store
        )
        assert mixed.returncode == 3  # one page stored (unchanged), one failed
        assert "unchanged" in mixed.stdout and "404" in mixed.stdout


def test_speculative_needs_vllm(store: Path) -> None:
    gguf = str(tiny_models.tiny_gguf("writes"))
    result = sealion(
        "ask", "hi", "-c", "demo", "--store", str(store), "--gguf", gguf, "--speculative"
    )
    assert result.returncode == 1
    assert "--speculative sets the in-process vLLM engine: it needs --vllm MODEL" in result.stderr
