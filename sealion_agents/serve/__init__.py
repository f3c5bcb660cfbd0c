"""``sealion serve``: an OpenAI-compatible chat and document Q&A server with a web page.

Modules, one concept each: ``config`` (settings), ``keys`` (hashed API keys and tenants),
``limits`` (rate, parallel, queue), ``tenant_store`` (collections per tenant), ``uploads``
(safe, bounded uploads), ``jobs`` (ingestion jobs), ``openai_protocol`` (OpenAI's request
and response shapes), ``streaming`` (server-sent events), ``errors`` (OpenAI's error shape),
``metrics`` (Prometheus), ``routes_chat`` / ``routes_documents`` (the API), ``app`` (the
FastAPI application and the page in ``static/``).

Importing this package needs FastAPI (the ``serve`` extra); nothing loads until ``create_app``.
"""

from sealion_agents.serve.app import OPEN_ROUTES, create_app
from sealion_agents.serve.config import ServeConfig
from sealion_agents.serve.keys import ApiKey, KeyStore

__all__ = ["OPEN_ROUTES", "ApiKey", "KeyStore", "ServeConfig", "create_app"]
