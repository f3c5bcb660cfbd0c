"""What one ``sealion serve`` is told: where it listens, stores, and its limits.

Each field's docstring is its documentation and its ``sealion serve --help`` text; the
command's flags are generated from these fields (``Flag`` says where a flag's name or
unit differs from the field's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealion_agents.qa.chain import language_code, language_codes

__all__ = ["Flag", "ReasoningField", "ServeConfig"]

MB = 1024 * 1024

ReasoningField = Literal["both", "reasoning_content", "reasoning"]
"""Where reasoning goes in a response: vLLM's ``reasoning_content``, the newer ``reasoning``,
or both."""


class Flag(NamedTuple):
    """A field's ``sealion serve`` flag, where it is not ``--field-name`` in the field's unit."""

    name: str | None
    """The flag; ``None``: no flag of its own (set another way, or not from the command)."""
    unit: str = ""
    """The flag's unit where it differs from the field's, e.g. "MB" for a byte count."""
    scale: int = 1
    """How many of the field's units make one of the flag's."""


class ServeConfig(BaseModel):
    """Settings of one server (the ``sealion serve`` flags)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    data_dir: Annotated[Path, Flag(None)]  # --data-dir, shared with `sealion keys`
    """The server's own folder: ``keys.json`` and ``uploads/``."""
    keys_file: Annotated[Path | None, Flag(None)] = None  # --keys-file, as --data-dir
    """The key file (default ``<data_dir>/keys.json``; servers sharing keys share this file)."""
    model_id: Annotated[str, Flag("--name")] = "sealion"
    """The chat model's name in ``/v1/models``; grounded Q&A models are ``qa/<collection>``."""
    reasoning_fields: Annotated[ReasoningField, Flag("--reasoning-field")] = "both"
    """Where reasoning goes in responses: vLLM's ``reasoning_content``, the newer
    ``reasoning``, or both."""
    sources_in_content: Annotated[bool, Flag(None)] = True
    """Append the cited sources to a grounded answer's ``content`` (kept by every client)."""
    max_upload_bytes: Annotated[int, Flag("--max-upload-mb", "MB", MB)] = Field(
        default=64 * MB, ge=1
    )
    """Most bytes one upload request may carry (413 beyond)."""
    max_body_bytes: Annotated[int, Flag("--max-body-mb", "MB", MB)] = Field(default=4 * MB, ge=1024)
    """Most bytes of a JSON request body (413 beyond, counted while it arrives)."""
    rate_per_minute: Annotated[float, Flag("--rate-limit")] = Field(default=120.0, ge=0)
    """Requests per minute per key (0: no limit), bursts up to the same number."""
    max_parallel_per_key: Annotated[int, Flag("--key-parallel")] = Field(default=4, ge=1)
    """Requests of one key generating or uploading at once."""
    max_parallel: int | None = Field(default=None, ge=1)
    """Generations at once (default: what the backend runs in parallel)."""
    queue_size: int = Field(default=8, ge=0)
    """Generations waiting for a slot; more get 429 with Retry-After."""
    retrieval_k: Annotated[int, Flag(None)] = Field(default=6, ge=1)
    """Passages retrieved per question."""
    answer_max_tokens: Annotated[int, Flag(None)] = Field(default=1024, ge=16)
    """Default most tokens of a grounded answer (reasoning included)."""
    default_language: str = "en"
    """Answer language of grounded Q&A when the question's is unclear (ISO 639-1 code; ``ms``
    or ``id`` also decides a question that reads as either)."""
    languages: list[str] | None = None
    """The deployment's answer languages (ISO 639-1 codes, e.g. ``ms,en``): detection chooses
    among them (default: all 13)."""

    _known_language = field_validator("default_language")(language_code)
    _known_languages = field_validator("languages")(language_codes)

    @property
    def key_path(self) -> Path:
        """Where the keys are."""
        return self.keys_file or self.data_dir / "keys.json"
