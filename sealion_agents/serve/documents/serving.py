"""The work behind the document API: collections, documents, uploads, jobs and ``/ask``.

``/ask`` answers from a collection as JSON, or as a stream of the chain's steps.

data flow (upload): multipart body -> ``read_uploads`` (size counted while reading, names
made safe) -> ``check_content`` (type by content) -> ``uploads/<job>/`` -> a job (202) ->
ingest in a worker thread -> the files removed when it ends (the chunks are in Chroma).
(ask): question + history -> ``state.admitted`` -> GroundedQA -> its result, or its events
(query, sources, reasoning, answer, verdict, result) as server-sent events (the stream owns
the admission).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request

from sealion_agents.serve.deps import require_ready
from sealion_agents.serve.documents.protocol import AskRequest, NewCollection, ask_input
from sealion_agents.serve.errors import ApiError
from sealion_agents.serve.jobs import TERMINAL, Job
from sealion_agents.serve.keys import ApiKey
from sealion_agents.serve.openai_protocol import RequestError
from sealion_agents.serve.state import ServerState
from sealion_agents.serve.streaming import event_stream, json_event, started
from sealion_agents.serve.uploads import check_content, read_uploads

__all__ = ["DocumentServing"]

_POLL = 0.1  # seconds between checks for a job's new steps in its event stream


class DocumentServing:
    """Serves the document API of one server, each caller within its tenant."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.collections = state.collections

    # -- collections and documents ----------------------------------------------------

    async def list_collections(self, key: ApiKey) -> dict[str, Any]:
        """The caller's collections."""
        found = await asyncio.to_thread(self.collections.for_tenant, key.tenant)
        return {"object": "list", "data": found}

    async def create_collection(self, body: NewCollection, key: ApiKey) -> dict[str, Any]:
        """A new, empty collection (409 when the name is taken)."""
        name = self.collections.check_name(body.name)
        if await asyncio.to_thread(self.collections.exists, key.tenant, name):
            raise ApiError(409, f"a collection named {name!r} already exists", code="exists")
        await asyncio.to_thread(self.collections.open, key.tenant, name, create=True)
        return {"name": name, "chunks": 0}

    async def delete_collection(self, name: str, key: ApiKey) -> dict[str, Any]:
        """Delete a collection and forget its retriever."""
        await asyncio.to_thread(self.collections.delete, key.tenant, name)
        self.state.forget(key.tenant, name)
        return {"name": name, "deleted": True}

    async def list_documents(self, name: str, key: ApiKey) -> dict[str, Any]:
        """The documents of a collection."""
        found = await asyncio.to_thread(self.collections.documents, key.tenant, name)
        return {"object": "list", "data": found}

    async def delete_document(self, name: str, source: str, key: ApiKey) -> dict[str, Any]:
        """Delete one document's chunks from a collection."""
        chunks = await asyncio.to_thread(self.collections.delete_document, key.tenant, name, source)
        return {"source": source, "deleted": True, "chunks": chunks}

    async def upload(self, name: str, request: Request, key: ApiKey) -> JSONResponse:
        """Store the uploaded files and start a job that ingests them (202)."""
        state = self.state
        store = await asyncio.to_thread(self.collections.open, key.tenant, name)  # 404 first
        folder = state.config.data_dir / "uploads" / f"job-{uuid.uuid4().hex}"
        async with state.admitted(key, generation=False):
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
        shutil.rmtree(folder / "incoming", ignore_errors=True)

        def cleanup(job: Job) -> None:
            shutil.rmtree(folder, ignore_errors=True)

        job = state.jobs.submit(key.tenant, name, store, ready, names, on_finish=cleanup)
        return JSONResponse(
            job.snapshot(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
        )

    # -- jobs -------------------------------------------------------------------------

    def job(self, key: ApiKey, job_id: str) -> Job:
        """The caller's job ``job_id``, or 404."""
        job = self.state.jobs.get(key.tenant, job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}", code="not_found")
        return job

    def cancel_job(self, key: ApiKey, job_id: str) -> dict[str, Any]:
        """Ask a job to stop; its state as it is now."""
        job = self.job(key, job_id)
        self.state.jobs.cancel(job)
        return job.snapshot()

    def job_events(self, request: Request, key: ApiKey, job_id: str) -> Any:
        """Every step of a job from its start, as server-sent events, up to its end."""
        job = self.job(key, job_id)

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

        return event_stream(self.state, request, events(), None, error_event="error")

    # -- ask --------------------------------------------------------------------------

    async def ask(self, name: str, request: Request, body: AskRequest, key: ApiKey) -> Any:
        """A grounded answer from the collection: its result, or a stream of its steps."""
        require_ready(self.state)
        await asyncio.to_thread(self.collections.open, key.tenant, name)  # 404 before queueing
        question, options = ask_input(body)
        async with self.state.admitted(key) as admission:
            chain = self.state.grounded_qa(key.tenant, name, options)
            if not body.stream:
                result = await chain.ainvoke(question)
                return result.model_dump()
            steps = await started(chain.astream(question))

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

            return event_stream(self.state, request, events(), admission, error_event="error")
