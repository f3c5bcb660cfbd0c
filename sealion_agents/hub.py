"""Find a GGUF file for a Hugging Face repo id and quant, downloading it once.

Data flow: repo id + quant -> ``huggingface_hub.snapshot_download`` restricted to the
matching ``*.gguf`` (its cache, resumable downloads and progress bars) -> local path.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from sealion_agents.errors import ModelDownloadError, require

__all__ = ["is_repo_id", "resolve_gguf"]

logger = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def is_repo_id(text: str) -> bool:
    """True when ``text`` looks like ``owner/name`` rather than a file path."""
    return bool(_REPO_ID.match(text)) and not text.endswith(".gguf")


def _quant_matches(name: str, quant: str) -> bool:
    stem = name.rsplit("/", 1)[-1].upper()
    stem = re.sub(r"-\d{5}-OF-\d{5}", "", stem.removesuffix(".GGUF"))
    return stem.endswith(quant.upper())


def resolve_gguf(
    repo_id: str,
    *,
    quant: str | None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download (or find in the cache) the GGUF of ``repo_id`` for ``quant``.

    Split files (``-00001-of-00003``) are all fetched; the first part is returned, which
    is what llama.cpp loads.
    """
    hub = require("huggingface_hub", extra="gguf", feature="Downloading from the Hugging Face Hub")
    if not quant:
        raise ValueError(
            f"{repo_id} is a repository of several GGUF files: pass quant=..., e.g. "
            "quant='Q4_K_M' (SEA-LION publishes F16, Q8_0, Q6_K, Q5_K_M, Q5_0, Q4_K_M, Q4_0, "
            "Q3_K_M and Q2_K)."
        )
    patterns = [f"*{quant.upper()}.gguf", f"*{quant.upper()}-*-of-*.gguf"]
    patterns += [p.lower() for p in patterns]
    try:
        folder = hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, cache_dir=cache_dir
        )
    except Exception as exc:  # huggingface_hub raises many kinds for "cannot reach"
        raise ModelDownloadError(
            f"Could not get {repo_id} (quant {quant}) from the Hugging Face Hub "
            f"({hub.constants.ENDPOINT}): {type(exc).__name__}: {exc}. Check the network "
            "(or HF_ENDPOINT and proxy settings, and HF_TOKEN for gated repos), or download "
            "the .gguf file elsewhere and pass its local path to from_gguf()."
        ) from exc
    files = sorted(p for p in Path(folder).rglob("*.gguf") if _quant_matches(p.as_posix(), quant))
    if not files:
        raise ValueError(
            f"{repo_id} has no GGUF file for quant {quant!r}; check the quant name on "
            f"https://huggingface.co/{repo_id}/tree/main."
        )
    logger.info("using %s", files[0])
    return files[0]
