"""The server commands: ``serve`` (its settings' flags generated from ``ServeConfig``) and ``keys``.

``ServerSettings`` turns each ``ServeConfig`` field into a flag: its name (``--field-name``,
or the field's ``Flag``), default, help (the field's docstring), bounds (``ge``/``le``),
choices (a ``Literal``) and validators, in the flag's unit where it has one (MB for a byte
count). A list field is a repeatable flag that also takes commas (``--languages ms,en``).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Annotated, Any

import annotated_types
import typer
from rich.table import Table

from sealion_agents.cli.console import CliError, err, friendly_errors, out
from sealion_agents.cli.flag_groups import FlagGroup, with_flag_groups
from sealion_agents.cli.flags import (
    ChromaUrl,
    DataDir,
    EmbeddingsDevice,
    EmbeddingsName,
    GuardFlags,
    KeysFile,
    ModelFlags,
    StoreDir,
)
from sealion_agents.cli.models import build_guardrails, unloaded_chat_model
from sealion_agents.cli.stores import chroma_client, server_dir, where

__all__ = ["ServerSettings", "add_server_commands"]


@dataclass(frozen=True)
class ServerSettings(FlagGroup):
    """``ServeConfig``'s fields as ``sealion serve`` flags; ``values`` in the fields' units."""

    values: dict[str, Any]

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """One option per ``ServeConfig`` field that has a flag."""
        from sealion_agents.serve.config import ServeConfig  # needs the serve extra

        return [
            _option(name, field)
            for name, field in ServeConfig.model_fields.items()
            if _flag(name, field).name is not None
        ]

    @classmethod
    def from_flags(cls, values: dict[str, Any]) -> ServerSettings:
        """The flags' values, in the fields' units (a size in MB as bytes)."""
        from sealion_agents.serve.config import ServeConfig

        fields = ServeConfig.model_fields
        for name, value in values.items():
            scale = _flag(name, fields[name]).scale
            if scale != 1 and value is not None:
                values[name] = int(value * scale)
        return cls(values)


def _flag(name: str, field: Any) -> Any:
    """The field's ``Flag``: declared next to it, else ``--field-name`` in its own unit."""
    from sealion_agents.serve.config import Flag

    declared = [item for item in field.metadata if isinstance(item, Flag)]
    return declared[0] if declared else Flag("--" + name.replace("_", "-"))


def _option(name: str, field: Any) -> inspect.Parameter:
    """A typer option for one ``ServeConfig`` field (typer reads a ``Literal`` as choices)."""
    flag = _flag(name, field)
    annotation = field.annotation
    options: dict[str, Any] = {}
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            options["min"] = _in_flag_unit(bound.ge, flag, math.ceil)
        elif isinstance(bound, annotated_types.Le):
            options["max"] = _in_flag_unit(bound.le, flag, math.floor)
    default = field.default
    if flag.scale != 1:
        annotation = float
        default = default / flag.scale
    text = " ".join((field.description or "").replace("``", "'").split())
    if flag.unit:
        text += f" Given in {flag.unit}."
    if flag.scale == 1:
        options["callback"] = _validated(name)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[annotation, typer.Option(flag.name, help=text, **options)],
        default=default,
    )


def _validated(name: str) -> Any:
    """A typer callback: the value as the field's validators make it, or a usage error."""
    from pydantic import ValidationError

    from sealion_agents.serve.config import ServeConfig

    def check(value: Any) -> Any:
        if value is None:
            return value
        try:
            model = ServeConfig.model_construct()
            ServeConfig.__pydantic_validator__.validate_assignment(model, name, value)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise typer.BadParameter(message) from None
        return getattr(model, name)

    return check


def _in_flag_unit(bound: Any, flag: Any, rounding: Any) -> Any:
    """A field's bound in a scaled flag's unit, rounded inward to 3 decimals (0.001 MB)."""
    return bound if flag.scale == 1 else rounding(bound / flag.scale * 1000) / 1000


def serve(
    backend: ModelFlags,
    guard: GuardFlags,
    *,
    store: StoreDir = None,
    chroma_url: ChromaUrl = None,
    embeddings: EmbeddingsName = None,
    embeddings_device: EmbeddingsDevice = None,
    data_dir: DataDir = None,
    keys_file: KeysFile = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    settings: ServerSettings,
) -> None:
    """Serve the OpenAI-compatible API, grounded Q&A over collections, and the web page."""
    with friendly_errors():
        from sealion_agents.errors import require

        uvicorn = require("uvicorn", extra="serve", feature="sealion serve")
        from sealion_agents.retrievers import load_embeddings
        from sealion_agents.serve import ServeConfig, create_app

        folder = server_dir(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config = ServeConfig(data_dir=folder, keys_file=keys_file, **settings.values)
        llm = unloaded_chat_model(backend)
        guardrails = build_guardrails(guard, load=False)  # loaded with the model
        client = chroma_client(store, chroma_url)
        embedder = load_embeddings(embeddings, embeddings_device)
        application = create_app(
            config, llm, client=client, embeddings=embedder, guardrails=guardrails
        )
        shown = f"[{host}]" if ":" in host else host
        out.print(f"sealion serve: http://{shown}:{port}/  (OpenAI API: http://{shown}:{port}/v1)")
        if guardrails is not None:
            stages = ",".join(sorted(guardrails.stages))
            out.print(f"guard: {guardrails.guard_name} screens {stages} (fails {guard.guard_fail})")
        out.print(
            f"store: {where(store, chroma_url)}; keys: {config.key_path}\n"
            "make a key: sealion keys create --tenant default "
            + (f"--keys-file {keys_file}" if keys_file else f"--data-dir {folder}")
        )
        uvicorn.run(application, host=host, port=port, log_level="warning")


keys_app = typer.Typer(help="API keys of `sealion serve` (stored hashed; shown once).")


def _keys(data_dir: Any, keys_file: Any) -> Any:
    from sealion_agents.serve.keys import KeyStore

    return KeyStore(keys_file or server_dir(data_dir) / "keys.json")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Whose collections the key reaches.")] = "default",
    label: Annotated[str, typer.Option("--name", help="A note: who or what uses it.")] = "",
    data_dir: DataDir = None,
    keys_file: KeysFile = None,
) -> None:
    """Make a key and print it (only now: it is stored hashed)."""
    with friendly_errors():
        record, secret = _keys(data_dir, keys_file).create(tenant, label)
        out.print(secret, markup=False)
        err.print(f"key {record.id} for tenant {tenant!r}; keep it now, it is not shown again")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, keys_file: KeysFile = None) -> None:
    """List keys (ids, tenants, names; never the secrets)."""
    with friendly_errors():
        table = Table("id", "tenant", "name")
        for record in _keys(data_dir, keys_file).list():
            table.add_row(record.id, record.tenant, record.name)
        out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `sealion keys list`).")],
    data_dir: DataDir = None,
    keys_file: KeysFile = None,
) -> None:
    """Revoke a key at once (running servers re-read the key file)."""
    with friendly_errors():
        if not _keys(data_dir, keys_file).revoke(key_id):
            raise CliError(f"no key with id {key_id!r}; see sealion keys list")
        out.print(f"revoked key {key_id}")


def add_server_commands(app: typer.Typer) -> None:
    """Add ``serve`` (a stub naming the missing extra where FastAPI is absent) and ``keys``."""
    try:
        app.command()(with_flag_groups(serve))
    except ImportError as missing:  # importing sealion_agents.serve needs the serve extra
        reason = str(missing)

        @app.command(
            "serve",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            help=serve.__doc__,
        )
        def serve_needs_its_extra() -> None:
            from sealion_agents.errors import install_hint

            with friendly_errors():
                raise ImportError(
                    f"sealion serve needs the serve extra ({reason}). Install it with: "
                    f"{install_hint('serve')}"
                )

    app.add_typer(keys_app, name="keys")
