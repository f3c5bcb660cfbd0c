"""The FastAPI application: the state, the serving classes, the routers, metrics per request.

data flow: request -> ``RouteMetrics`` (counts by route template and status) -> a router
(``chat.router``, ``documents.router``, or this module's own ``router``: page, health, readiness and
metrics) -> its dependencies (``deps``: the key and its rate) -> the serving class of its
API (``app.state.chat``, ``app.state.documents``) -> JSON, or server-sent events for streams.

Open without a key (the allow-list): ``/``, ``/static/*``, ``/health``, ``/ready``.
Everything else needs ``Authorization: Bearer <key>`` (or ``X-API-Key``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealion_agents.serve.chat.router import router as chat_router
from sealion_agents.serve.chat.serving import ChatServing
from sealion_agents.serve.config import ServeConfig
from sealion_agents.serve.deps import Authenticated, State
from sealion_agents.serve.documents.router import router as documents_router
from sealion_agents.serve.documents.serving import DocumentServing
from sealion_agents.serve.errors import error_type, install_handlers
from sealion_agents.serve.metrics import route_label
from sealion_agents.serve.state import ServerState

if TYPE_CHECKING:
    from sealion_agents.chat_model import ChatSeaLion
    from sealion_agents.guardrails import Guardrails

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


router = APIRouter()
"""The server's own routes: the page, health, readiness and metrics."""


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The web page."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/health")
async def health() -> dict[str, str]:
    """Up (whether or not the model has loaded)."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: State) -> JSONResponse:
    """Ready once the model has loaded (503 while loading or after it failed)."""
    if state.ready.is_set():
        return JSONResponse({"status": "ready", "model": state.config.model_id})
    status = "failed" if state.load_error else "loading"
    return JSONResponse({"status": status, "error": state.load_error}, status_code=503)


@router.get("/metrics")
async def metrics(key: Authenticated, state: State) -> Response:  # never rate-limited
    """The Prometheus metrics."""
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(
    config: ServeConfig,
    llm: ChatSeaLion,
    *,
    client: Any = None,
    embeddings: Any = None,
    guardrails: Guardrails | None = None,
) -> FastAPI:
    """The server for ``llm`` (a ``ChatSeaLion``) over a Chroma ``client``.

    Args:
        config: the server's settings.
        llm: the chat model (loaded in a thread at start-up; ``/ready`` says when).
        client: a chromadb client (default: an embedded store in ``<data_dir>/chroma``).
        embeddings: the embedding model (default: the offline multilingual default).
        guardrails: safety checks of questions and answers (``sealion_agents.guardrails``;
            its guard model is loaded with ``llm``).
    """
    if client is None:
        import chromadb

        client = chromadb.PersistentClient(path=str(config.data_dir / "chroma"))
    if embeddings is None:
        from sealion_agents.retrievers import default_embeddings

        embeddings = default_embeddings()
    state = ServerState(config, llm, client, embeddings, guardrails)

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
    app.state.chat = ChatServing(state)
    app.state.documents = DocumentServing(state)
    install_handlers(app)
    app.add_middleware(RouteMetrics, state=state)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(chat_router)  # every API route depends on ``Caller``
    app.include_router(documents_router)
    return app
