"""Every error the server answers, in OpenAI's JSON shape with the right status.

``{"error": {"message", "type", "param", "code"}}``; 429 carries ``Retry-After``. Streams
that fail after they started send the same object as their last event.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from sealion_agents.errors import (
    BackendBusyError,
    ContextWindowExceededError,
    EngineError,
    SeaLionError,
    ServerError,
    TokenizerUnavailableError,
    UnsupportedSchemaError,
)
from sealion_agents.retrievers.store import EmptyCollectionError
from sealion_agents.serve.limits import Busy
from sealion_agents.serve.openai_protocol import RequestError
from sealion_agents.serve.tenant_store import NotFound
from sealion_agents.serve.uploads import UploadError

__all__ = ["ApiError", "error_body", "error_for", "error_type", "install_handlers"]

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
    502: "upstream_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answered as it is: status, message, and optional code, param, headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_type(status: int) -> str:
    """OpenAI's error type for an HTTP status."""
    return _TYPES.get(status, "server_error")


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object."""
    kind = error_type(status)
    return {"error": {"message": message, "type": kind, "param": param, "code": code or kind}}


def error_for(exc: BaseException) -> ApiError:
    """The answer to an exception raised while serving a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Busy):
        return ApiError(
            429, str(exc), code="rate_limit_exceeded", headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, RequestError):
        return ApiError(400, str(exc), param=exc.param)
    if isinstance(exc, ContextWindowExceededError):
        return ApiError(400, str(exc), code="context_length_exceeded", param="messages")
    if isinstance(exc, UnsupportedSchemaError):
        return ApiError(400, str(exc), param="tools")
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc), code="not_found")
    if isinstance(exc, EmptyCollectionError):
        return ApiError(
            409,
            "this collection holds no documents yet: upload some first "
            "(POST /v1/collections/{name}/documents, or the page)",
            code="empty_collection",
        )
    if isinstance(exc, UploadError):
        return ApiError(exc.status, str(exc))
    if isinstance(exc, BackendBusyError):
        return ApiError(429, str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, ServerError):
        return ApiError(502, f"the model server failed: {exc}")
    if isinstance(exc, EngineError):
        logger.error("the model's engine failed", exc_info=exc)
        return ApiError(500, str(exc), code="engine_error")
    if isinstance(exc, TokenizerUnavailableError):
        return ApiError(502, f"the model server cannot count tokens: {exc}")
    if isinstance(exc, ValueError):  # names and values our own code refused, with the reason
        return ApiError(400, str(exc))
    logger.error("unexpected error", exc_info=exc)
    return ApiError(500, f"internal error ({type(exc).__name__}); the server log has details")


def _response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.status, str(error), error.code, error.param),
        status_code=error.status,
        headers=error.headers,
    )


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in OpenAI's shape."""

    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}; the API is under /v1"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return _response(ApiError(exc.status_code, message, headers=dict(exc.headers or {})))

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = (
            f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid")
        )
        return _response(ApiError(400, message, param=where or None))

    async def on_any(request: Request, exc: Exception) -> JSONResponse:
        return _response(error_for(exc))

    app.add_exception_handler(HTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    # every expected kind by name: Starlette re-raises what only the Exception handler catches
    # (a traceback in the log, the connection dropped after the answer)
    expected = (ApiError, Busy, RequestError, NotFound, UploadError, SeaLionError, ValueError)
    for kind in (*expected, Exception):
        app.add_exception_handler(kind, on_any)
