"""What one ``sealion serve`` is told: where it listens, stores, and its limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["ServeConfig"]


class ServeConfig(BaseModel):
    """Settings of one server (the ``sealion serve`` flags)."""

    data_dir: Path
    """The server's own folder: ``keys.json`` and ``uploads/``."""
    keys_file: Path | None = None
    """The key file (default ``<data_dir>/keys.json``; servers sharing keys share this file)."""
    model_id: str = "sealion"
    """The chat model's name in ``/v1/models``; grounded Q&A models are ``qa/<collection>``."""
    reasoning_fields: Literal["both", "reasoning_content", "reasoning"] = "both"
    """Where reasoning goes in responses: vLLM's ``reasoning_content``, the newer
    ``reasoning``, or both."""
    sources_in_content: bool = True
    """Append the cited sources to a grounded answer's ``content`` (kept by every client)."""
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Most bytes one upload request may carry (413 beyond)."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Most bytes of a JSON request body (413 beyond, counted while it arrives)."""
    rate_per_minute: float = Field(default=120.0, ge=0)
    """Requests per minute per key (0: no limit), bursts up to the same number."""
    max_parallel_per_key: int = Field(default=4, ge=1)
    """Requests of one key generating or uploading at once."""
    max_parallel: int | None = Field(default=None, ge=1)
    """Generations at once (default: what the backend runs in parallel)."""
    queue_size: int = Field(default=8, ge=0)
    """Generations waiting for a slot; more get 429 with Retry-After."""
    retrieval_k: int = Field(default=6, ge=1)
    """Passages retrieved per question."""
    answer_max_tokens: int = Field(default=1024, ge=16)
    """Default most tokens of a grounded answer (reasoning included)."""

    @property
    def key_path(self) -> Path:
        """Where the keys are."""
        return self.keys_file or self.data_dir / "keys.json"
