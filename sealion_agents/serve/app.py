"""The FastAPI application: routes, the key check, metrics per request, the web page.

data flow: request -> ``RouteMetrics`` (counts by route template and status) -> route ->
``caller`` (the API key -> its tenant; 401 without one) -> the route's work (chat, grounded
Q&A, collections, uploads, jobs) -> JSON, or server-sent events for streams.

Open without a key (the allow-list): ``/``, ``/static/*``, ``/health``, ``/ready``.
Everything else needs ``Authorization: Bearer <key>`` (or ``X-API-Key``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealion_agents.serve.config import ServeConfig
from sealion_agents.serve.errors import ApiError, error_type, install_handlers
from sealion_agents.serve.keys import ApiKey
from sealion_agents.serve.metrics import route_label
from sealion_agents.serve.state import ServerState

__all__ = ["OPEN_ROUTES", "create_app"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
OPEN_ROUTES = frozenset({"/", "/static", "/health", "/ready"})
"""Routes answered without a key (the page, its files, health and readiness)."""


class RouteMetrics:
    """Pure ASGI middleware: one count per response, by route template and status.

    Streams pass through unbuffered (unlike ``BaseHTTPMiddleware``).
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, code = route_label(scope), status["code"]
            self.state.metrics.requests.labels(route, str(code)).inc()
            if code >= 400:
                self.state.metrics.errors.labels(route, error_type(code)).inc()


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def authenticated(request: Request) -> ApiKey:
    """The API key of the request (its tenant), or 401."""
    state: ServerState = request.app.state.server
    key = state.keys.authenticate(_secret(request))
    if key is None:
        raise ApiError(
            401,
            "a valid API key is required: send 'Authorization: Bearer <key>' (create one with "
            "'sealion keys create --tenant NAME')",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


def caller(request: Request) -> ApiKey:
    """The API key of the request, within its rate limit (429 with Retry-After beyond)."""
    key = authenticated(request)
    state: ServerState = request.app.state.server
    state.take_rate(key)
    return key


Caller = Annotated[ApiKey, Depends(caller)]
"""A route parameter: the request's key, authenticated and within its rate."""
Authenticated = Annotated[ApiKey, Depends(authenticated)]
"""A route parameter: the request's key, authenticated (no rate limit)."""


def require_ready(request: Request) -> None:
    """503 with Retry-After while the model is still loading."""
    state: ServerState = request.app.state.server
    if not state.ready.is_set():
        message = (
            f"the model failed to load ({state.load_error})"
            if state.load_error
            else "the model is still loading; try again shortly"
        )
        raise ApiError(503, message, code="not_ready", headers={"Retry-After": "5"})


def create_app(
    config: ServeConfig, llm: Any, *, client: Any = None, embeddings: Any = None
) -> FastAPI:
    """The server for ``llm`` (a ``ChatSeaLion``) over a Chroma ``client``.

    Args:
        config: the server's settings.
        llm: the chat model (loaded in a thread at start-up; ``/ready`` says when).
        client: a chromadb client (default: an embedded store in ``<data_dir>/chroma``).
        embeddings: the embedding model (default: the offline multilingual default).
    """
    if client is None:
        import chromadb

        client = chromadb.PersistentClient(path=str(config.data_dir / "chroma"))
    if embeddings is None:
        from sealion_agents.retrievers import default_embeddings

        embeddings = default_embeddings()
    state = ServerState(config, llm, client, embeddings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().run_in_executor(None, state.load)
        yield
        await loading
        await state.close()

    app = FastAPI(
        title="sealion-agents",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.server = state
    install_handlers(app)
    app.add_middleware(RouteMetrics, state=state)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if state.ready.is_set():
            return JSONResponse({"status": "ready", "model": config.model_id})
        status = "failed" if state.load_error else "loading"
        return JSONResponse({"status": status, "error": state.load_error}, status_code=503)

    @app.get("/metrics")
    async def metrics(key: Authenticated) -> Response:  # never rate-limited
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    from sealion_agents.serve.routes_chat import chat_router
    from sealion_agents.serve.routes_documents import documents_router

    app.include_router(chat_router(state))  # every route there depends on ``caller``
    app.include_router(documents_router(state))
    return app
