"""Real OpenAI-compatible model servers on 127.0.0.1 for tests and benchmarks: start, check, stop.

Each server is a child process in its own process group (so the engine processes vLLM
spawns go with it), logging to a file whose tail is shown when it fails to come up. On Linux it
also dies with the process that started it (``PR_SET_PDEATHSIG``): a test worker that crashes
leaves no server behind. Start servers from a thread that outlives them (the signal follows
the starting thread).

Data flow: a model (GGUF or folder) and options -> argv, environment and a log file -> a child
process -> its health URL polled until 200 -> ``base_url`` for clients; ``stop``: SIGTERM to the
process group, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import partial
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True), "prctl", None)
"""Linux's prctl, resolved before any fork (the child only calls it)."""


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGKILL when the parent dies; gone already if it has."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)


#: KV cache for the tiny models: 64 MiB holds >100k of their tokens. (vLLM's CPU default is a
#: fraction of RAM that fails at start-up; ``VLLM_CPU_KVCACHE_SPACE``, whole GiB, overrides this.)
KV_CACHE_BYTES = 64 * 2**20
#: vLLM on CPU: engine in-process, loopback only.
VLLM_ENV = {
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}
#: fp32 and eager (no compile at start-up), a small context and KV cache.
VLLM_ENGINE_KWARGS = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 1024,
    "distributed_executor_backend": "uni",
    "kv_cache_memory_bytes": KV_CACHE_BYTES,
}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process; ``start`` launches it, ``wait`` polls its health URL."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: dict[str, str] | None = None,
        health_path: str = "/health",
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.health_path = health_path
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"sealion-test-{name}-{port}.log"
        self.started_s = 0.0

    @property
    def base_url(self) -> str:
        """The OpenAI API root."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> Server:
        """Launch the process (returns at once; call ``wait``)."""
        self._t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # its own process group, led by its pid
                preexec_fn=partial(_die_with_parent, os.getpid()) if _prctl else None,
            )
        return self

    def wait(self, timeout: float = 240.0) -> Server:
        """Block until the health URL answers 200; fail with the log tail otherwise."""
        assert self.process is not None
        url = f"http://127.0.0.1:{self.port}{self.health_path}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        self.started_s = time.monotonic() - self._t0
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group led by our pid, then SIGKILL it if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL at once (the server dies mid-request)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def vllm_server(
    model_dir: Path, *, reasoning_parser: str | None, name: str, max_model_len: int = 1024
) -> Server:
    """``python -m vllm.entrypoints.openai.api_server`` on a model folder (not yet started)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--served-model-name", "sealion-tiny",
        "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--dtype", "float32", "--max-model-len", str(max_model_len),
        "--trust-request-chat-template",
        "--kv-cache-memory-bytes", str(KV_CACHE_BYTES),
        "--uvicorn-log-level", "warning",
    ]  # fmt: skip
    if reasoning_parser:
        argv += ["--reasoning-parser", reasoning_parser]
    env = dict(VLLM_ENV)
    return Server(name, argv, port=port, env=env)


def llamacpp_server(
    models: dict[str, tuple[Path, str]], *, name: str = "llamacpp", api_key: str | None = None
) -> Server:
    """``python -m llama_cpp.server`` serving each GGUF under an alias with a thinking mode.

    llama-cpp-python's server ignores per-request ``chat_template_kwargs``; a model's
    ``chat_template_kwargs`` in the config file is the only way to set ``thinking_mode``.
    ``models``: alias -> (gguf path, "on" | "off"); with ``api_key`` requests need it.
    """
    port = free_port()
    config: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "api_key": api_key,
        # by default a new request cuts the stream being served short (it ends "stop", empty)
        "interrupt_requests": False,
        "models": [
            {
                "model": str(path),
                "model_alias": alias,
                "chat_template_kwargs": {"thinking_mode": mode},
                "n_ctx": 1024,
                "n_threads": 1,
                "n_threads_batch": 1,
                "verbose": False,
            }
            for alias, (path, mode) in models.items()
        ],
    }
    config_path = Path(tempfile.gettempdir()) / f"sealion-test-{name}-{port}.json"
    config_path.write_text(json.dumps(config))
    argv = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)]
    env = {"GGML_NO_BACKTRACE": "1"}
    return Server(name, argv, port=port, env=env, health_path="/docs")  # /docs needs no key


def sealion_server(
    gguf: Path,
    data_dir: Path,
    *,
    store: Path | None = None,
    chroma_url: str | None = None,
    extra: Sequence[str] = (),
    name: str = "sealion-serve",
) -> Server:
    """``sealion serve`` on a GGUF (not yet started); healthy once ``/ready`` (model loaded)."""
    port = free_port()
    argv = [
        sys.executable, "-c", "from sealion_agents.cli import main; main()", "serve",
        "--gguf", str(gguf), "--data-dir", str(data_dir), "--port", str(port),
    ]  # fmt: skip
    if chroma_url:
        argv += ["--chroma-url", chroma_url]
    else:
        argv += ["--store", str(store or data_dir / "chroma")]
    argv += list(extra)
    env = {"GGML_NO_BACKTRACE": "1", "HF_HUB_OFFLINE": "1"}
    return Server(name, argv, port=port, env=env, health_path="/ready")


def chroma_server(path: Path, *, name: str = "chroma") -> Server:
    """``chroma run`` on a folder (not yet started); healthy once its heartbeat answers."""
    exe = Path(sys.executable).with_name("chroma")
    port = free_port()
    argv = [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)]
    return Server(name, argv, port=port, health_path="/api/v2/heartbeat")
