"""Where the commands keep things: the Chroma store (a folder or a server) and collections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealion_agents.cli.console import CliError
from sealion_agents.cli.flags import CollectionFlags

__all__ = ["chroma_client", "default_store", "open_collection", "server_dir", "where"]


def default_store() -> Path:
    """The embedded Chroma folder used when --store is not given."""
    from sealion_agents.retrievers.store import default_store_path

    return default_store_path()


def server_dir(data_dir: Path | None) -> Path:
    """The server's folder (keys, uploads): --data-dir, else one in the data home."""
    from sealion_agents.retrievers.store import data_home

    return data_dir or data_home() / "server"


def where(store: Path | None, chroma_url: str | None) -> str:
    """The store, as the user knows it: the server's URL or the folder."""
    return chroma_url or str(store or default_store())


def chroma_client(store: Path | None, chroma_url: str | None) -> Any:
    """A client of the Chroma server (checked to answer), else of the embedded folder."""
    from sealion_agents.errors import require

    chromadb = require("chromadb", extra="retrieval", feature="The Chroma store")
    if chroma_url:
        from urllib.parse import urlparse

        url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        try:
            client = chromadb.HttpClient(host=url.hostname, port=url.port or 8000)
            client.heartbeat()
        except Exception as exc:
            raise CliError(f"cannot reach the Chroma server at {chroma_url}: {exc}") from exc
        return client
    folder = store or default_store()
    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder))


def open_collection(flags: CollectionFlags, *, must_exist: bool) -> Any:
    """The collection the flags name, with its embedding model (the recorded one by default)."""
    from sealion_agents.retrievers import load_embeddings, open_store
    from sealion_agents.retrievers.store import (
        chroma_collection_name,
        display_name,
        recorded_embeddings,
    )

    client = chroma_client(flags.store, flags.chroma_url)
    listed = client.list_collections()
    names = [getattr(c, "name", c) for c in listed]
    if must_exist and chroma_collection_name(flags.collection) not in names:
        known = ", ".join(sorted(display_name(c) for c in listed)) or "none yet"
        raise CliError(
            f"no collection named {flags.collection!r} in {where(flags.store, flags.chroma_url)}"
            f" (collections: {known}). Create it with: sealion ingest PATH --collection "
            f"{flags.collection}"
        )
    device = flags.embeddings_device
    if flags.embeddings:
        model = load_embeddings(flags.embeddings, device)
    else:  # the collection's own model (on ``device``), else the default
        model = recorded_embeddings(client, chroma_collection_name(flags.collection), device)
    return open_store(model, collection_name=flags.collection, client=client)
