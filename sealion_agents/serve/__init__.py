"""``sealion serve``: an OpenAI-compatible chat and document Q&A server with a web page.

Modules, one concept each: ``config`` (settings), ``keys`` (hashed API keys and tenants),
``limits`` (rate, parallel, queue), ``state`` (what one server holds; admission as
``async with state.admitted(key)``), ``tenant_store`` (collections per tenant), ``uploads``
(safe, bounded uploads), ``jobs`` (ingestion jobs), ``openai_protocol`` (OpenAI's request
and response shapes, usage and the Q&A fields), ``streaming`` (server-sent events that own
their admission), ``errors`` (OpenAI's error shape), ``metrics`` (Prometheus), ``deps``
(what routes depend on: state, key, rate, readiness, bounded JSON bodies), the APIs
``chat/`` and ``documents/`` (each a thin ``router`` over a ``serving`` class), and ``app``
(the FastAPI application, its own routes and the page in ``static/``).

``ServeConfig`` and the keys import with pydantic alone (the ``sealion`` command builds its
serve flags from them); ``create_app`` and ``OPEN_ROUTES`` need FastAPI (the ``serve`` extra)
and import it when first used. Nothing loads a model until ``create_app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sealion_agents.serve.config import ServeConfig
from sealion_agents.serve.keys import ApiKey, KeyStore

if TYPE_CHECKING:
    from sealion_agents.serve.app import OPEN_ROUTES, create_app

__all__ = ["OPEN_ROUTES", "ApiKey", "KeyStore", "ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``OPEN_ROUTES`` from the FastAPI application, on first use."""
    if name in ("OPEN_ROUTES", "create_app"):
        from sealion_agents.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
