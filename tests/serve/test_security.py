"""Keys and tenants: every route outside the allow-list refuses a request without a valid
key, and one tenant cannot see or touch another's collections, documents or jobs."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from sealion_agents import ChatSeaLion
from sealion_agents.serve import OPEN_ROUTES, ServeConfig, create_app
from sealion_agents.serve.keys import KeyStore
from tests.serve.conftest import Served, upload
from tests.serve_model import DOCS, serve_gguf

PARAMS = {"name": "kb", "job_id": "0" * 32, "source": "merlion.md"}


def app_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path) of every route the application defines, parameters filled in."""
    import chromadb

    app = create_app(
        ServeConfig(data_dir=tmp_path),
        ChatSeaLion.from_gguf(serve_gguf()),
        client=chromadb.EphemeralClient(),
        embeddings=object(),
    )
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMS[m.group(1)], route.path)
            found += [(method, path) for method in sorted(route.methods)]
        elif isinstance(route, Mount):
            found.append(("GET", f"{route.path}/style.css"))
        else:  # starlette's own routes (none are expected)
            found.append(("GET", route.path))  # type: ignore[attr-defined]
    return found


def test_every_route_needs_a_valid_key(served: Served, tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    assert len(routes) >= 16
    real = served.keys["acme"]
    wrong_secret = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    headers_tried = {
        "none": {},
        "garbage": {"Authorization": "Bearer nonsense"},
        "wrong secret, real id": {"Authorization": f"Bearer {wrong_secret}"},
        "x-api-key wrong": {"X-API-Key": wrong_secret},
        "basic": {"Authorization": "Basic " + real},
    }
    checked = 0
    for method, path in routes:
        open_route = path == "/" or any(
            path == p or path.startswith(p + "/") for p in OPEN_ROUTES - {"/"}
        )
        for label, headers in headers_tried.items():
            response = httpx.request(method, served.url + path, headers=headers, json={})
            if open_route:
                assert response.status_code == 200, (method, path, label)
            else:
                assert response.status_code == 401, (method, path, label, response.text)
                error = response.json()["error"]
                assert error["code"] == "invalid_api_key" and "Bearer" in error["message"]
                checked += 1
    assert checked == 14 * len(headers_tried)  # every keyed route, every wrong key


def test_a_revoked_key_stops_working_at_once(served: Served) -> None:
    keys = KeyStore(served.data_dir / "keys.json")
    record, secret = keys.create("acme", "short-lived")
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{served.url}/v1/collections", headers=headers).status_code == 200
    assert keys.revoke(record.id)
    assert httpx.get(f"{served.url}/v1/collections", headers=headers).status_code == 401


def test_keys_are_stored_hashed(served: Served) -> None:
    stored = (served.data_dir / "keys.json").read_text()
    for secret in served.keys.values():
        assert secret not in stored and secret.split(".")[1] not in stored
    assert (served.data_dir / "keys.json").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/collections/kb/documents", None),
        ("DELETE", "/v1/collections/kb/documents/merlion.md", None),
        ("POST", "/v1/collections/kb/ask", {"question": "Where does the Merlion mascot stand?"}),
        ("DELETE", "/v1/collections/kb", None),
        ("POST", "/v1/chat/completions",
         {"model": "qa/kb", "messages": [{"role": "user", "content": "Merlion mascot?"}]}),
    ],
)  # fmt: skip
def test_another_tenants_collection_does_not_exist(
    served: Served, method: str, path: str, body: dict | None
) -> None:
    with served.client("other") as other:
        response = other.request(method, path, json=body)
    assert response.status_code == 404, response.text
    with served.client() as acme:  # nothing of acme's was touched
        docs = acme.get("/v1/collections/kb/documents").json()["data"]
    assert [d["source"] for d in docs] == sorted(DOCS)


def test_tenants_have_separate_namespaces(served: Served) -> None:
    with served.client("other") as other:
        names = [c["name"] for c in other.get("/v1/collections").json()["data"]]
        assert "kb" not in names
        other.post("/v1/collections", json={"name": "kb"})
        job = upload(other, "kb", {"notes.txt": "Other tenant's own notes about kaya toast."})
        assert job["stage"] == "done"
        with served.client() as acme:
            assert acme.get(f"/v1/jobs/{job['id']}").status_code == 404  # not acme's job
            acme_docs = acme.get("/v1/collections/kb/documents").json()["data"]
        other_docs = other.get("/v1/collections/kb/documents").json()["data"]
        assert [d["source"] for d in other_docs] == ["notes.txt"]
        assert [d["source"] for d in acme_docs] == sorted(DOCS)
        assert other.delete("/v1/collections/kb").status_code == 200


def test_keys_command_creates_lists_and_revokes(tmp_path: Path) -> None:
    import subprocess
    import sys

    def sealion(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "from sealion_agents.cli import main; main()", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    keys_file = str(tmp_path / "k.json")
    made = sealion("keys", "create", "--tenant", "acme", "--name", "bot", "--keys-file", keys_file)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("sl-") and "not shown again" in made.stderr
    record = KeyStore(keys_file).authenticate(secret)
    assert record is not None and record.tenant == "acme"
    listed = sealion("keys", "list", "--keys-file", keys_file)
    assert record.id in listed.stdout and "acme" in listed.stdout and secret not in listed.stdout
    bad = sealion("keys", "create", "--tenant", "Bad Tenant", "--keys-file", keys_file)
    assert bad.returncode == 1 and "tenant 'Bad Tenant' is not allowed" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert sealion("keys", "revoke", record.id, "--keys-file", keys_file).returncode == 0
    assert KeyStore(keys_file).authenticate(secret) is None
    again = sealion("keys", "revoke", record.id, "--keys-file", keys_file)
    assert again.returncode == 1 and "no key with id" in again.stderr


def test_serve_prints_its_url_and_how_to_make_a_key(served: Served) -> None:
    log = served.server.log_tail()
    assert f"http://127.0.0.1:{served.server.port}/" in log
    assert "make a key: sealion keys create --tenant default" in log


def test_a_valid_x_api_key_header_is_accepted(served: Served) -> None:
    """The key in ``X-API-Key`` (instead of ``Authorization: Bearer``) works as well."""
    with httpx.Client(base_url=served.url, timeout=60) as client:
        listed = client.get("/v1/models", headers={"X-API-Key": served.keys["acme"]})
    assert listed.status_code == 200
    assert "qa/kb" in [m["id"] for m in listed.json()["data"]]


def test_another_tenants_job_cannot_be_cancelled_or_followed(served: Served) -> None:
    with served.client("other") as other:
        other.post("/v1/collections", json={"name": "jobs-of-other"})
        job = upload(other, "jobs-of-other", {"kaya.txt": "Kaya toast with soft-boiled eggs."})
        with served.client() as acme:
            assert acme.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
            assert acme.get(f"/v1/jobs/{job['id']}/events").status_code == 404
        assert other.get(f"/v1/jobs/{job['id']}").json()["stage"] == "done"  # untouched
        assert other.delete("/v1/collections/jobs-of-other").status_code == 200


def test_the_page_allows_only_its_own_files(served: Served) -> None:
    """The page's Content-Security-Policy: its own scripts, styles and API, nothing else."""
    page = httpx.get(f"{served.url}/", timeout=60).text
    policy = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', page)
    assert policy is not None, page[:400]
    rules = dict(part.strip().split(" ", 1) for part in policy.group(1).split(";") if part.strip())
    for directive in ("default-src", "script-src", "style-src", "connect-src"):
        assert rules[directive] == "'self'", rules
    assert rules["object-src"] == rules["base-uri"] == "'none'", rules
    assert "unsafe-inline" not in policy.group(1) and "unsafe-eval" not in policy.group(1)
