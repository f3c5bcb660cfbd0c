"""The ``sealion`` command: ingest documents, ask questions about them, chat, serve.

Data flow: flags / ``SEALION_*`` environment -> a model (GGUF path or repo + quant, a vLLM
model, or an OpenAI-compatible URL) and a Chroma collection (a folder, or a server) ->
``GroundedQA`` -> the answer streamed to the terminal, then its numbered sources; or
``sealion serve`` -> the HTTP service.

Modules: ``flags`` (the options commands share, declared once, in groups), ``flag_groups``
(how a group becomes typer options), ``console`` (output and user errors), ``stores``
(Chroma folder or server, collections), ``models`` (the chat model the flags name), ``qa``
(ingest, ask, chat, collections), ``serve`` (serve, with flags generated from
``ServeConfig``, and keys).
"""

from __future__ import annotations

import logging
import os

import typer

from sealion_agents.cli import qa
from sealion_agents.cli.console import out
from sealion_agents.cli.models import build_chat_model
from sealion_agents.cli.serve import add_server_commands
from sealion_agents.cli.stores import default_store as _default_store  # noqa: F401  (tests)

__all__ = ["app", "build_chat_model", "main", "out"]

app = typer.Typer(
    name="sealion",
    help="Grounded document Q&A on SEA-LION: ingest files, then ask about them.",
    no_args_is_help=True,
    add_completion=False,
)
for command in (qa.ingest, qa.ask, qa.chat, qa.collections):
    app.command()(command)
add_server_commands(app)


def main() -> None:
    """Entry point of the ``sealion`` console script."""
    level = os.environ.get("SEALION_LOG_LEVEL", "WARNING")
    # vLLM logs to stdout by default, into the answer: send its log where ours goes
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    logging.basicConfig(level=level)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # bm25s sets its own logger to DEBUG when imported
    app()
