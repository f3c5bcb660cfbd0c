"""The routes of the document API, each one call of :class:`DocumentServing`.

data flow: request -> ``Caller`` (key, rate) -> ``read_body`` where there is a JSON body
-> the ``DocumentServing`` of the app (``app.state.documents``) -> JSON or a stream.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from sealion_agents.serve.deps import Caller, read_body
from sealion_agents.serve.documents.protocol import AskRequest, NewCollection
from sealion_agents.serve.documents.serving import DocumentServing

__all__ = ["Documents", "document_serving", "router"]

router = APIRouter(prefix="/v1")


async def document_serving(request: Request) -> DocumentServing:
    """The app's :class:`DocumentServing`."""
    serving: DocumentServing = request.app.state.documents
    return serving


Documents = Annotated[DocumentServing, Depends(document_serving)]
"""A route parameter: the app's :class:`DocumentServing`."""


@router.get("/collections")
async def list_collections(key: Caller, docs: Documents) -> dict[str, Any]:
    """The caller's collections."""
    return await docs.list_collections(key)


@router.post("/collections", status_code=201)
async def create_collection(request: Request, key: Caller, docs: Documents) -> Any:
    """A new, empty collection."""
    body = await read_body(request, NewCollection)
    return await docs.create_collection(body, key)


@router.delete("/collections/{name}")
async def delete_collection(name: str, key: Caller, docs: Documents) -> dict[str, Any]:
    """Delete a collection."""
    return await docs.delete_collection(name, key)


@router.get("/collections/{name}/documents")
async def list_documents(name: str, key: Caller, docs: Documents) -> dict[str, Any]:
    """The documents of a collection."""
    return await docs.list_documents(name, key)


@router.delete("/collections/{name}/documents/{source:path}")
async def delete_document(name: str, source: str, key: Caller, docs: Documents) -> Any:
    """Delete one document of a collection."""
    return await docs.delete_document(name, source, key)


@router.post("/collections/{name}/documents", status_code=202)
async def upload(name: str, request: Request, key: Caller, docs: Documents) -> Any:
    """Upload files (multipart) into a collection: an ingestion job (202)."""
    return await docs.upload(name, request, key)


@router.get("/jobs/{job_id}")
async def job_status(job_id: str, key: Caller, docs: Documents) -> dict[str, Any]:
    """An ingestion job's state."""
    return docs.job(key, job_id).snapshot()


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, key: Caller, docs: Documents) -> dict[str, Any]:
    """Cancel an ingestion job."""
    return docs.cancel_job(key, job_id)


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, key: Caller, docs: Documents) -> Any:
    """An ingestion job's steps as server-sent events."""
    return docs.job_events(request, key, job_id)


@router.post("/collections/{name}/ask")
async def ask(name: str, request: Request, key: Caller, docs: Documents) -> Any:
    """A grounded answer from a collection, as JSON or a stream of the chain's steps."""
    body = await read_body(request, AskRequest)
    return await docs.ask(name, request, body, key)
