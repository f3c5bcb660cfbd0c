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

Importing this package needs FastAPI (the ``serve`` extra); nothing loads until ``create_app``.
"""

from sealion_agents.serve.app import OPEN_ROUTES, create_app
from sealion_agents.serve.config import ServeConfig
from sealion_agents.serve.keys import ApiKey, KeyStore

__all__ = ["OPEN_ROUTES", "ApiKey", "KeyStore", "ServeConfig", "create_app"]
