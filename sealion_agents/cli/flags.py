"""The options commands share, each declared once: single flags, and groups of them.

``CollectionFlags`` (ingest, ask, chat): which collection, in which store, embedded how.
``ModelFlags`` (ask, chat, serve): which model, on which backend. ``GuardFlags`` (ask,
chat, serve): which SEA-Guard model screens which stages. ``AnswerFlags`` (ask,
chat): how an answer is generated and shown. ``DataDir`` and ``KeysFile`` locate a
server's keys (serve, keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer

from sealion_agents.cli.flag_groups import FlagGroup

__all__ = [
    "AnswerFlags",
    "ChromaUrl",
    "CollectionFlags",
    "DataDir",
    "EmbeddingsDevice",
    "EmbeddingsName",
    "GuardFlags",
    "KeysFile",
    "ModelFlags",
    "StoreDir",
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
        help="Embedding model: a SEA-LION choice (sea-lion-e5-600m, sea-lion-modernbert-300m, "
        "sea-lion-modernbert-600m; CHOICE=FOLDER for a local copy of one), or a "
        "sentence-transformers hub name or folder; run on a GPU when there is one (default: "
        "the model the collection records, else the offline multilingual-e5-small).",
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


@dataclass(frozen=True)
class CollectionFlags(FlagGroup):
    """Which collection, in which Chroma store, embedded with which model."""

    collection: Annotated[
        str,
        typer.Option("--collection", "-c", envvar="SEALION_COLLECTION", help="Collection name."),
    ] = "sealion"
    store: StoreDir = None
    chroma_url: ChromaUrl = None
    embeddings: EmbeddingsName = None
    embeddings_device: EmbeddingsDevice = None


def _profile_name(name: str | None) -> str | None:
    from sealion_agents.profiles import profile_named

    if name is None:
        return None
    try:
        return profile_named(name).name
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class ModelFlags(FlagGroup):
    """Which model, on which backend (exactly one of --gguf, --vllm and --openai-url)."""

    gguf: Annotated[
        str | None,
        typer.Option(
            envvar="SEALION_GGUF",
            help="GGUF file, Hugging Face repo id (with --quant), or 'smollm2' (offline demo "
            "model).",
        ),
    ] = None
    quant: Annotated[str | None, typer.Option(envvar="SEALION_QUANT", help="e.g. Q4_K_M.")] = None
    vllm: Annotated[
        str | None, typer.Option(envvar="SEALION_VLLM", help="Model for in-process vLLM.")
    ] = None
    vllm_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--vllm-arg",
            metavar="KEY=VALUE",
            help="An engine setting for --vllm, passed to vllm.LLM (repeatable; VALUE is read "
            "as JSON when it parses, else as text), e.g. max_model_len=8192.",
        ),
    ] = None
    speculative: Annotated[
        bool,
        typer.Option(
            help="With --vllm: decode speculatively with the profile's draft model (Qwen "
            "v4.5's, as its card pairs them; needs a GPU).",
        ),
    ] = False
    openai_url: Annotated[
        str | None,
        typer.Option(envvar="SEALION_OPENAI_URL", help="OpenAI-compatible server base URL."),
    ] = None
    model: Annotated[
        str | None,
        typer.Option("--model", envvar="SEALION_MODEL", help="Model name on the server."),
    ] = None
    n_ctx: Annotated[int | None, typer.Option(help="Context window for the GGUF runtime.")] = None
    context_window: Annotated[
        int | None,
        typer.Option(
            "--context-window",
            envvar="SEALION_CONTEXT_WINDOW",
            min=16,
            help="The served model's context window in tokens, for a server that does not "
            "report it (--openai-url; the server's n_ctx or max_model_len).",
        ),
    ] = None
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="SEALION_PROFILE",
            callback=_profile_name,
            help="The SEA-LION model profile (thinking switch, tool format...), where the "
            "model's name does not tell it (a server behind a proxy); e.g. "
            "qwen-sea-lion-v4.5-27b-it. Default: found from the model's name and template.",
        ),
    ] = None
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            envvar="SEALION_TOKENIZER",
            help="Count tokens with this local tokenizer (a folder holding tokenizer.json, or "
            "the model's GGUF), for a server without a tokenize endpoint (--openai-url).",
        ),
    ] = None


def _guard_stages(value: str | None) -> str | None:
    from sealion_agents.guardrails import parse_stages

    if value is None:
        return None
    try:
        return ",".join(sorted(parse_stages(value)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class GuardFlags(FlagGroup):
    """Which SEA-Guard model screens the conversation (at most one of its three backends)."""

    guard_gguf: Annotated[
        str | None,
        typer.Option(
            envvar="SEALION_GUARD_GGUF",
            help="Screen with a SEA-Guard GGUF: a file, or a Hugging Face repo id (with "
            "--guard-quant). Off when no --guard-* model is given.",
        ),
    ] = None
    guard_quant: Annotated[
        str | None, typer.Option(envvar="SEALION_GUARD_QUANT", help="e.g. Q4_K_M.")
    ] = None
    guard_vllm: Annotated[
        str | None,
        typer.Option(envvar="SEALION_GUARD_VLLM", help="A SEA-Guard model for in-process vLLM."),
    ] = None
    guard_vllm_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--guard-vllm-arg",
            metavar="KEY=VALUE",
            help="An engine setting for --guard-vllm (repeatable), as --vllm-arg.",
        ),
    ] = None
    guard_openai_url: Annotated[
        str | None,
        typer.Option(
            envvar="SEALION_GUARD_OPENAI_URL",
            help="An OpenAI-compatible server that serves a SEA-Guard model (with --guard-model).",
        ),
    ] = None
    guard_model: Annotated[
        str | None,
        typer.Option(
            envvar="SEALION_GUARD_MODEL",
            help="The guard's name on that server, e.g. aisingapore/SEA-Guard.",
        ),
    ] = None
    guard_stages: Annotated[
        str,
        typer.Option(
            envvar="SEALION_GUARD_STAGES",
            callback=_guard_stages,
            help="What the guard screens, comma-separated: input (the question), output (the "
            "answer, held until it passes), passages (each retrieved passage), tools (tool "
            "results sent back).",
        ),
    ] = "input,output"
    guard_fail: Annotated[
        Literal["closed", "open"],
        typer.Option(
            envvar="SEALION_GUARD_FAIL",
            help="When the guard cannot answer (down, timeout): closed refuses, open lets pass.",
        ),
    ] = "closed"
    guard_timeout: Annotated[
        float | None,
        typer.Option(
            envvar="SEALION_GUARD_TIMEOUT",
            min=0.1,
            help="Seconds a guard server may take per check (--guard-openai-url).",
        ),
    ] = None
    guard_stream_reasoning: Annotated[
        bool,
        typer.Option(
            help="Stream the reasoning while the answer is held for its output check.",
        ),
    ] = False

    @property
    def enabled(self) -> bool:
        """Whether a guard model is named."""
        return bool(self.guard_gguf or self.guard_vllm or self.guard_openai_url)


def _language_code(code: str) -> str:
    from sealion_agents.qa.chain import language_code

    try:
        return language_code(code)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _language_codes(codes: list[str] | None) -> list[str] | None:
    from sealion_agents.qa.chain import language_codes

    try:
        return language_codes(codes) if codes else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class AnswerFlags(FlagGroup):
    """How an answer is generated and shown."""

    thinking: Annotated[
        bool,
        typer.Option("--thinking/--no-thinking", help="Let the model reason before answering."),
    ] = True
    show_reasoning: Annotated[bool, typer.Option(help="Print the reasoning, dimmed.")] = False
    max_tokens: Annotated[
        int, typer.Option(help="Most tokens for the answer, reasoning included.", min=16)
    ] = 1024
    default_language: Annotated[
        str,
        typer.Option(
            envvar="SEALION_DEFAULT_LANGUAGE",
            callback=_language_code,
            help="Answer language when the question's is unclear (ISO 639-1 code; ms or id "
            "also decides a question that reads as either).",
        ),
    ] = "en"
    languages: Annotated[
        list[str] | None,
        typer.Option(
            callback=_language_codes,
            help="The answer languages detection chooses among, e.g. ms,en (repeatable; "
            "default: all 13).",
        ),
    ] = None
