"""What every route depends on: the server's state, the caller's key, readiness, the body.

data flow: request -> ``server_state`` (the app's :class:`ServerState`) -> ``authenticated``
(the API key -> its tenant; 401 without one) -> ``caller`` (within the key's rate; 429
beyond) -> the route -> ``read_body`` (JSON within ``--max-body-mb``, validated) ->
``require_ready`` (503 while the model loads) -> the serving class.

Every JSON body is read by ``read_json``: counted as it arrives and refused with 413 past
``--max-body-mb`` (a larger Content-Length at once), refused with 400 when arrays and
objects nest deeper than ``MAX_JSON_DEPTH`` (checked without recursion before parsing).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from sealion_agents.serve.errors import ApiError
from sealion_agents.serve.keys import ApiKey
from sealion_agents.serve.openai_protocol import RequestError
from sealion_agents.serve.state import ServerState

__all__ = [
    "MAX_JSON_DEPTH",
    "Authenticated",
    "Caller",
    "State",
    "authenticated",
    "caller",
    "json_depth",
    "parse_json",
    "read_body",
    "read_json",
    "require_ready",
    "server_state",
]

Body = TypeVar("Body", bound=BaseModel)

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have (400 beyond)."""

_PARSE_INLINE = 256 * 1024
"""Bodies up to this many bytes are parsed on the event loop; larger ones in a thread."""

_SCAN = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)


def server_state(request: Request) -> ServerState:
    """The state of the server that answers ``request``."""
    state: ServerState = request.app.state.server
    return state


State = Annotated[ServerState, Depends(server_state)]
"""A route parameter: the server's state."""


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def authenticated(request: Request) -> ApiKey:
    """The API key of the request (its tenant), or 401."""
    key = server_state(request).keys.authenticate(_secret(request))
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
    server_state(request).take_rate(key)
    return key


Caller = Annotated[ApiKey, Depends(caller)]
"""A route parameter: the request's key, authenticated and within its rate."""
Authenticated = Annotated[ApiKey, Depends(authenticated)]
"""A route parameter: the request's key, authenticated (no rate limit)."""


def require_ready(state: ServerState) -> None:
    """503 with Retry-After while the model is still loading."""
    if not state.ready.is_set():
        message = (
            f"the model failed to load ({state.load_error})"
            if state.load_error
            else "the model is still loading; try again shortly"
        )
        raise ApiError(503, message, code="not_ready", headers={"Retry-After": "5"})


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets in strings ignored).

    A loop, not recursion, linear in the text; it stops counting once past ``limit``.
    """
    depth = deepest = pos = 0
    while (found := _SCAN.search(text, pos)) is not None:
        char, pos = found.group(), found.end()
        if char == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:  # an unterminated string: not JSON, which json.loads reports
                break
            pos = rest.end()
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """A body as JSON, or a 400 that says why not (not JSON, or nested too deep)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except ValueError as exc:
        raise RequestError(f"the body is not valid JSON ({exc})") from exc
    if json_depth(text) > MAX_JSON_DEPTH:
        raise RequestError(
            f"the body nests arrays and objects more than {MAX_JSON_DEPTH} deep; flatten it"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"the body is not valid JSON ({exc})") from exc


async def _read_bounded(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it is over ``limit`` bytes (declared or received)."""
    too_large = ApiError(
        413,
        f"the body is over the limit of {limit:,} bytes; send less, or ask the operator to "
        "raise --max-body-mb",
        code="too_large",
        headers={"Connection": "close"},  # the client need not send the rest
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int | None = None) -> Any:
    """The request body as JSON, read within ``limit`` bytes (default: ``--max-body-mb``).

    413 once over the limit (counted as it arrives); 400 when not JSON or nested too deep.
    """
    raw = await _read_bounded(request, limit or server_state(request).config.max_body_bytes)
    if len(raw) > _PARSE_INLINE:  # a large body does not hold up the other requests
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


async def read_body(request: Request, model: type[Body], limit: int | None = None) -> Body:
    """The request body as JSON validated by ``model``, or a 400 naming the field."""
    try:
        return model.model_validate(await read_json(request, limit))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RequestError(f"{where}: {first['msg']}", where) from exc
