"""Collections, documents, uploads, ingestion jobs and ``/ask``.

``/ask`` answers from a collection as JSON, or as a stream of the chain's steps.

data flow (upload): multipart body -> ``read_uploads`` (size counted while reading, names
made safe) -> ``check_content`` (type by content) -> ``uploads/<job>/`` -> a job (202) ->
ingest in a worker thread -> the files removed when it ends (the chunks are in Chroma).
(ask): question + history -> GroundedQA -> its result, or its events (query, sources,
reasoning, answer, verdict, result) as server-sent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from sealion_agents.serve.app import Caller, require_ready
from sealion_agents.serve.errors import ApiError
from sealion_agents.serve.jobs import TERMINAL, Job
from sealion_agents.serve.keys import ApiKey
from sealion_agents.serve.openai_protocol import RequestError
from sealion_agents.serve.routes_chat import qa_chain, read_body
from sealion_agents.serve.state import ServerState
from sealion_agents.serve.streaming import event_stream, json_event, started
from sealion_agents.serve.uploads import check_content, read_uploads

__all__ = ["AskRequest", "documents_router"]

_POLL = 0.1  # seconds between checks for a job's new steps in its event stream


class NewCollection(BaseModel):
    """``POST /v1/collections``."""

    name: str = Field(min_length=1, max_length=200)


class Turn(BaseModel):
    """One earlier turn of the conversation."""

    role: str
    content: str


class AskRequest(BaseModel):
    """``POST /v1/collections/{name}/ask``."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1, max_length=8000)
    history: list[Turn] = Field(default_factory=list)
    stream: bool = False
    thinking: bool | None = None
    max_thinking_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=16)


def _history(turns: list[Turn]) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for i, turn in enumerate(turns):
        if turn.role == "user":
            out.append(HumanMessage(turn.content))
        elif turn.role == "assistant":
            out.append(AIMessage(turn.content))
        else:
            raise RequestError(f"history[{i}].role must be 'user' or 'assistant'", f"history[{i}]")
    return out


def documents_router(state: ServerState) -> APIRouter:
    """The collection, document, job and ask routes of ``state``'s server."""
    router = APIRouter(prefix="/v1")
    collections = state.collections

    @router.get("/collections")
    async def list_collections(key: Caller) -> dict[str, Any]:
        found = await asyncio.to_thread(collections.for_tenant, key.tenant)
        return {"object": "list", "data": found}

    @router.post("/collections", status_code=201)
    async def create_collection(request: Request, key: Caller) -> Any:
        body = await read_body(request, NewCollection)
        name = collections.check_name(body.name)
        if await asyncio.to_thread(collections.exists, key.tenant, name):
            raise ApiError(409, f"a collection named {name!r} already exists", code="exists")
        await asyncio.to_thread(collections.open, key.tenant, name, create=True)
        return {"name": name, "chunks": 0}

    @router.delete("/collections/{name}")
    async def delete_collection(name: str, key: Caller) -> dict[str, Any]:
        await asyncio.to_thread(collections.delete, key.tenant, name)
        state.forget(key.tenant, name)
        return {"name": name, "deleted": True}

    @router.get("/collections/{name}/documents")
    async def list_documents(name: str, key: Caller) -> dict[str, Any]:
        found = await asyncio.to_thread(collections.documents, key.tenant, name)
        return {"object": "list", "data": found}

    @router.delete("/collections/{name}/documents/{source:path}")
    async def delete_document(name: str, source: str, key: Caller) -> Any:
        chunks = await asyncio.to_thread(collections.delete_document, key.tenant, name, source)
        return {"source": source, "deleted": True, "chunks": chunks}

    @router.post("/collections/{name}/documents", status_code=202)
    async def upload(name: str, request: Request, key: Caller) -> Any:
        store = await asyncio.to_thread(collections.open, key.tenant, name)  # 404 first
        ticket = await state.admit(key, generation=False)
        folder = state.config.data_dir / "uploads" / f"job-{uuid.uuid4().hex}"
        try:
            files = await read_uploads(
                request.headers.get("content-type", ""),
                request.stream(),
                folder / "incoming",
                state.config.max_upload_bytes,
            )
            names = [f.name for f in files]
            repeated = {n for n in names if names.count(n) > 1}
            if repeated:
                raise RequestError(f"two files are named {sorted(repeated)[0]!r}; rename one")
            ready = folder / "files"
            ready.mkdir()
            for upload in files:
                check_content(upload.path, upload.name)
                upload.path.rename(ready / upload.name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            await ticket.release()
        shutil.rmtree(folder / "incoming", ignore_errors=True)

        def cleanup(job: Job) -> None:
            shutil.rmtree(folder, ignore_errors=True)

        job = state.jobs.submit(key.tenant, name, store, ready, names, on_finish=cleanup)
        return JSONResponse(
            job.snapshot(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
        )

    def _job(key: ApiKey, job_id: str) -> Job:
        job = state.jobs.get(key.tenant, job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}", code="not_found")
        return job

    @router.get("/jobs/{job_id}")
    async def job_status(job_id: str, key: Caller) -> dict[str, Any]:
        return _job(key, job_id).snapshot()

    @router.post("/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str, key: Caller) -> dict[str, Any]:
        job = _job(key, job_id)
        state.jobs.cancel(job)
        return job.snapshot()

    @router.get("/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request, key: Caller) -> Any:
        job = _job(key, job_id)

        async def events() -> AsyncIterator[dict[str, str]]:
            sent = 0  # every step from the start, however late the caller came
            while True:
                for snapshot in job.history[sent:]:
                    sent += 1
                    yield json_event(snapshot, "progress")
                    if snapshot["stage"] in TERMINAL:
                        yield json_event(snapshot, "end")
                        return
                await asyncio.sleep(_POLL)

        return event_stream(state, request, events(), None, error_event="error")

    @router.post("/collections/{name}/ask")
    async def ask(name: str, request: Request, key: Caller) -> Any:
        body = await read_body(request, AskRequest)
        require_ready(request)
        await asyncio.to_thread(collections.open, key.tenant, name)  # 404 before queueing
        options: dict[str, Any] = {}
        if body.thinking is not None:
            options["thinking"] = body.thinking
        if body.max_thinking_tokens is not None:
            options["max_thinking_tokens"] = body.max_thinking_tokens
        if body.max_tokens is not None:
            options["max_tokens"] = body.max_tokens
        question = {"question": body.question, "history": _history(body.history)}
        ticket = await state.admit(key, generation=True)
        try:
            chain = qa_chain(state, key.tenant, name, options)
            if body.stream:
                steps = await started(chain.astream(question))
            else:
                result = await chain.ainvoke(question)
        except BaseException:
            await ticket.release()
            raise
        if not body.stream:
            await ticket.release()
            return result.model_dump()

        async def events() -> AsyncIterator[dict[str, str]]:
            async with contextlib.aclosing(steps):
                async for step in steps:
                    if step.kind == "sources":
                        data: Any = {"sources": [s.model_dump() for s in step.sources]}
                    elif step.kind == "result" and step.result is not None:
                        data = step.result.model_dump()
                    else:
                        data = {"text": step.text}
                    yield json_event(data, step.kind)

        return event_stream(state, request, events(), ticket, error_event="error")

    return router
