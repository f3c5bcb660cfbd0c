"""The document commands: ingest, ask, chat, collections.

Data flow: ``CollectionFlags`` -> a Chroma collection; ``ModelFlags`` -> a chat model; both
-> ``GroundedQA`` -> the answer streamed to the terminal, then its numbered sources.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from sealion_agents.cli.console import CliError, friendly_errors, out
from sealion_agents.cli.flag_groups import with_flag_groups
from sealion_agents.cli.flags import (
    AnswerFlags,
    ChromaUrl,
    CollectionFlags,
    GuardFlags,
    ModelFlags,
    StoreDir,
)
from sealion_agents.cli.models import build_chat_model, build_guardrails
from sealion_agents.cli.stores import chroma_client, open_collection, where

__all__ = ["PARTIAL_FAILURE", "ask", "chat", "collections", "ingest"]

PARTIAL_FAILURE = 3
"""Exit status of ``sealion ingest`` when some files failed and the others were stored."""


@with_flag_groups
def ingest(
    paths: Annotated[
        list[str], typer.Argument(help="Files, folders and http(s) URLs of web pages to ingest.")
    ],
    target: CollectionFlags,
) -> None:
    """Split, embed and store documents (re-running adds only what changed)."""
    with friendly_errors():
        from sealion_agents.retrievers import ingest as run_ingest

        collection = open_collection(target, must_exist=False)
        report = run_ingest(collection, _ingest_items(paths), show_progress=True)
        table = Table("file", "result")
        for name in report.added:
            table.add_row(name, "[green]added[/]")
        for name in report.replaced:
            table.add_row(name, "[cyan]replaced (changed)[/]")
        for name in report.unchanged:
            table.add_row(name, "[dim]unchanged[/]")
        for name, message in report.errors.items():
            table.add_row(name, f"[red]{message}[/]")
        for name in report.ignored:
            table.add_row(name, "[dim]skipped: not a supported file type[/]")
        out.print(table)
        out.print(
            f"{report.chunks_added} chunks added, {report.chunks_deleted} removed, "
            f"{len(report.errors)} file(s) failed, collection {target.collection!r} in "
            f"{where(target.store, target.chroma_url)}"
        )
        if report.errors:  # 1: nothing could be ingested; 3: some files failed
            stored = report.added or report.replaced or report.unchanged
            raise typer.Exit(code=PARTIAL_FAILURE if stored else 1)


@with_flag_groups
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in any of the 13 languages.")],
    source: CollectionFlags,
    backend: ModelFlags,
    guard: GuardFlags,
    answering: AnswerFlags,
) -> None:
    """Answer one question from the collection, with numbered sources."""
    with friendly_errors():
        qa = _grounded_qa(source, backend, guard, answering)
        _show_answer(qa, question, show_reasoning=answering.show_reasoning)


@with_flag_groups
def chat(
    source: CollectionFlags, backend: ModelFlags, guard: GuardFlags, answering: AnswerFlags
) -> None:
    """A conversation about the collection (reads questions from stdin; empty line ends)."""
    with friendly_errors():
        from langchain_core.messages import AIMessage, HumanMessage

        qa = _grounded_qa(source, backend, guard, answering)
        history: list[Any] = []
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                out.print("[bold]you>[/] ", end="")
            line = sys.stdin.readline()
            if not line or not line.strip() or line.strip() in {"exit", "quit"}:
                break
            question = line.strip()
            result = _show_answer(
                qa,
                {"question": question, "history": history},
                show_reasoning=answering.show_reasoning,
            )
            history += [HumanMessage(question), AIMessage(result.answer)]


def collections(
    delete: Annotated[str | None, typer.Option(help="Delete this collection.")] = None,
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
) -> None:
    """List collections (with chunk counts and embedding model), or delete one."""
    with friendly_errors():
        from sealion_agents.retrievers.store import chroma_collection_name, display_name

        client = chroma_client(store, chroma_url)
        names = sorted(getattr(c, "name", c) for c in client.list_collections())
        if delete is not None:
            if chroma_collection_name(delete) not in names:
                raise CliError(f"no collection named {delete!r} in {where(store, chroma_url)}")
            client.delete_collection(chroma_collection_name(delete))
            out.print(f"deleted collection {delete!r}")
            return
        table = Table("collection", "chunks", "embedding model")
        for name in names:
            found = client.get_collection(name)
            meta = found.metadata or {}
            table.add_row(
                display_name(found), str(found.count()), str(meta.get("embedding_model", "?"))
            )
        out.print(table if names else f"no collections in {where(store, chroma_url)}")


def _ingest_items(paths: list[str]) -> list[Any]:
    """Paths as they are; http(s) URLs as langchain-community's web page loader."""
    items: list[Any] = []
    for text in paths:
        if text.startswith(("http://", "https://")):
            from sealion_agents.errors import require

            loaders = require(
                "langchain_community.document_loaders", extra="loaders", feature="Ingesting URLs"
            )
            items.append(loaders.WebBaseLoader(text, raise_for_status=True, show_progress=False))
        else:
            items.append(text)
    return items


def _grounded_qa(
    source: CollectionFlags, backend: ModelFlags, guard: GuardFlags, answering: AnswerFlags
) -> Any:
    """The collection (it must exist), the model and any guard, as one grounded Q&A chain."""
    from sealion_agents.options import GenerationOptions
    from sealion_agents.qa.chain import GroundedQA
    from sealion_agents.retrievers import SEARetriever

    guardrails = build_guardrails(guard)  # its flags are checked before anything loads
    store = open_collection(source, must_exist=True)
    return GroundedQA(
        llm=build_chat_model(backend),
        guardrails=guardrails,
        retriever=SEARetriever(store=store, k=6),
        answer_options=GenerationOptions(
            thinking=answering.thinking, max_thinking_tokens=1024, max_tokens=answering.max_tokens
        ),
        default_language=answering.default_language,
        languages=answering.languages,
    )


def _show_answer(qa: Any, question: Any, *, show_reasoning: bool) -> Any:
    """Stream one answer to the terminal, then its sources; return the result."""
    result = None
    in_reasoning = False
    for event in qa.stream(question):
        if event.kind == "reasoning" and show_reasoning:
            out.print(event.text, end="", style="dim", markup=False)
            in_reasoning = True
        elif event.kind == "answer":
            if in_reasoning:
                out.print()
                in_reasoning = False
            out.print(event.text, end="", markup=False)
        elif event.kind == "result":
            result = event.result
    out.print()
    if result is None:
        raise CliError("the chain ended without a result")
    if result.status != "grounded" or result.removed_claims:
        out.print(f"[yellow]({_verdict(result)})[/]")
        if result.status in ("declined", "blocked") or result.removed_claims:
            out.print(result.answer, markup=False)
    for citation in result.citations:
        page = f", page {citation.page}" if citation.page is not None else ""
        snippet = " ".join(citation.text.split())[:160]
        out.print(f"[bold][{citation.number}][/] {citation.source}{page}: [dim]{snippet}[/]")
    return result


def _verdict(result: Any) -> str:
    if result.status == "blocked":
        checked = "question" if result.blocked_stage == "input" else "answer"
        return f"blocked: the safety check ({result.blocked_by}) refused the {checked}"
    if result.status == "declined":
        return {
            "model": "declined: the documents do not hold the answer",
            "verifier": "declined: no claim was supported by its sources",
            "no_sources": "declined: nothing relevant was found",
        }.get(result.declined_by, "declined")
    return f"revised: {len(result.removed_claims)} unsupported sentence(s) removed"
