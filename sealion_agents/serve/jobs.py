"""Ingestion jobs: stage, progress and cancel for the files of one upload.

An upload returns at once; its files are split, embedded and stored in a worker thread.

data flow: ``JobManager.submit`` -> a :class:`Job` (stage "queued") -> one worker thread
-> ``ingest(store, files, on_progress, cancel, relative_to=<upload folder>)`` (stage
"ingesting", chunks stored / to store) -> "done" (some files may have failed: per-file
results), "failed" (no file could be stored) or "cancelled" (the job's unfinished chunks
removed; documents stored before are untouched). A job cancelled while still queued ends at
once, without waiting for the jobs ahead of it. Every change of a job is kept in its
``history`` (one snapshot per change, queued first), so whoever follows it, however late,
sees each step. Jobs are kept in memory for an hour.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealion_agents.retrievers.ingest import IngestCancelledError, IngestReport, ingest

__all__ = ["Job", "JobManager"]

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "cancelled"})
_KEEP_SECONDS = 3600
_BATCH = 16  # chunks per embedding call: progress moves in steps this small


@dataclass
class Job:
    """One upload's ingestion."""

    id: str
    tenant: str
    collection: str
    files: list[str]
    stage: str = "queued"
    chunks_stored: int = 0
    chunks_total: int = 0
    error: str | None = None
    results: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """A snapshot per change, oldest first (the first one: queued)."""

    def __post_init__(self) -> None:
        self.history.append(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """What the API shows of the job."""
        total = self.chunks_total
        progress = 1.0 if self.stage == "done" else (self.chunks_stored / total if total else 0.0)
        return {
            "id": self.id,
            "collection": self.collection,
            "files": self.files,
            "stage": self.stage,
            "progress": round(progress, 4),
            "chunks_stored": self.chunks_stored,
            "chunks_total": total,
            "error": self.error,
            "results": self.results,
            "created": self.created,
            "finished": self.finished,
        }


def _results(report: IngestReport) -> dict[str, str]:
    out = {s: "added" for s in report.added}
    out |= {s: "replaced" for s in report.replaced}
    out |= {s: "unchanged" for s in report.unchanged}
    out |= {s: f"failed: {message}" for s, message in report.errors.items()}
    return out


class JobManager:
    """Runs ingestion jobs one at a time, in a worker thread."""

    def __init__(
        self, on_finish: Callable[[Job], None] | None = None, max_file_bytes: int | None = None
    ) -> None:
        self.max_file_bytes = max_file_bytes
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sealion-ingest")
        self._on_finish = on_finish

    def submit(
        self,
        tenant: str,
        collection: str,
        store: Any,
        folder: Path,
        names: list[str],
        on_finish: Callable[[Job], None] | None = None,
    ) -> Job:
        """Queue the ingestion of ``names`` (files in ``folder``) into ``store``.

        ``on_finish`` runs when the job ends, whatever its end.
        """
        job = Job(id=uuid.uuid4().hex, tenant=tenant, collection=collection, files=names)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
        self._pool.submit(self._run_then, job, store, folder, on_finish)
        return job

    def _run_then(
        self, job: Job, store: Any, folder: Path, on_finish: Callable[[Job], None] | None
    ) -> None:
        try:
            self._run(job, store, folder)
        finally:
            if on_finish is not None:
                on_finish(job)

    def get(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job with this id (another tenant's is None)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def cancel(self, job: Job) -> None:
        """Stop ``job``: a queued one ends now, a running one before its next file or batch."""
        with self._lock:
            job.cancel.set()
            queued = job.stage == "queued"
            if queued:
                self._update(job, stage="cancelled", finished=time.time())
        if queued:
            self._finished(job)

    def running(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.stage not in TERMINAL)

    def close(self) -> None:
        """Cancel every job and stop the worker."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _forget_old(self) -> None:
        now = time.time()
        for job_id in [
            j.id for j in self._jobs.values() if j.finished and now - j.finished > _KEEP_SECONDS
        ]:
            del self._jobs[job_id]

    def _update(self, job: Job, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(job, name, value)
        job.history.append(job.snapshot())

    def _run(self, job: Job, store: Any, folder: Path) -> None:
        with self._lock:  # against ``cancel`` of a queued job
            if job.stage in TERMINAL:  # cancelled while queued
                return
            if not job.cancel.is_set():
                self._update(job, stage="ingesting")
        if job.cancel.is_set():
            self._finish(job, "cancelled")
            return

        def progress(stored: int, total: int) -> None:
            self._update(job, chunks_stored=stored, chunks_total=total)

        try:
            report = ingest(
                store,
                [folder / name for name in job.files],
                batch_size=_BATCH,
                show_progress=False,
                on_progress=progress,
                **({"max_file_bytes": self.max_file_bytes} if self.max_file_bytes else {}),
                cancel=job.cancel,
                relative_to=folder,
            )
        except IngestCancelledError as exc:
            self._update(job, results=_results(exc.report))
            self._finish(job, "cancelled")
            return
        except Exception as exc:  # the store or the embedding model failed: this job only
            logger.exception("ingestion job %s failed", job.id)
            self._finish(job, "failed", error=f"ingestion failed ({type(exc).__name__}: {exc})")
            return
        self._update(job, results=_results(report))
        stored = report.added or report.replaced or report.unchanged
        if report.errors and not stored:
            errors = "; ".join(f"{s}: {m}" for s, m in report.errors.items())
            self._finish(job, "failed", error=errors)
        else:
            self._finish(job, "done")

    def _finish(self, job: Job, stage: str, error: str | None = None) -> None:
        self._update(job, stage=stage, error=error, finished=time.time())
        self._finished(job)

    def _finished(self, job: Job) -> None:
        logger.info("job %s %s", job.id, job.stage)
        if self._on_finish is not None:
            self._on_finish(job)
