"""Start-up: /health answers at once, /ready only once the model is loaded; a model that
cannot load is reported by /ready and by every generation request, readably."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from sealion_agents.testing.servers import sealion_server
from tests.serve.conftest import make_keys


def test_a_model_that_cannot_load_is_reported_not_crashed(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really a model")
    keys = make_keys(tmp_path, ("acme",))
    server = sealion_server(broken, tmp_path)
    server.health_path = "/health"
    server.start().wait(120)
    try:
        base = f"http://127.0.0.1:{server.port}"
        deadline = time.monotonic() + 120  # a bound on a hang, not a measured time
        ready = httpx.get(f"{base}/ready")
        while ready.json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)  # the load runs in the server's thread; /ready tells when it ended
            ready = httpx.get(f"{base}/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert ready.json()["error"]
        reply = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {keys['acme']}"},
            json={"model": "sealion", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 503
        assert reply.json()["error"]["message"].startswith("the model failed to load")
        assert httpx.get(f"{base}/health").status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in server.log_tail(200).split("loading failed")[0]
