"""API keys: created once, shown once, stored hashed, each belonging to a tenant.

data flow: ``sealion keys create --tenant acme`` -> a random secret ``sl-<id>.<token>`` ->
keys.json keeps ``{id, tenant, name, sha256(secret)}`` (never the secret) -> a request's
``Authorization: Bearer <secret>`` -> the record found by id, the hash compared in constant
time -> the caller's tenant.

A key is a 256-bit random token, so one SHA-256 is the right hash (a slow password hash buys
nothing against guessing 2^256 values). The file is re-read when it changes, so keys created
or revoked while a server runs take effect at once; servers sharing the file share the keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sealion_agents.errors import SeaLionError

__all__ = ["ApiKey", "KeyStore", "check_tenant"]

logger = logging.getLogger(__name__)

_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def check_tenant(tenant: str) -> str:
    """The tenant name, or a ``ValueError`` saying what a tenant name may hold."""
    if not _TENANT.fullmatch(tenant):
        raise ValueError(
            f"tenant {tenant!r} is not allowed: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return tenant


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One stored key (its hash, never its secret)."""

    id: str
    tenant: str
    name: str
    sha256: str
    created: float


class KeyStore:
    """The keys of a server, kept in one JSON file (mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None

    def _load(self) -> dict[str, ApiKey]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return self._keys
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._keys = {k["id"]: ApiKey(**k) for k in raw.get("keys", [])}
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise SeaLionError(
                    f"cannot read the key file {self.path} ({exc}); restore it or create keys again"
                ) from exc
            self._stamp = stamp
        return self._keys

    def _save(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        data = json.dumps({"keys": [asdict(k) for k in keys.values()]}, indent=1)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, self.path)
        self._stamp = None

    def create(self, tenant: str, name: str = "") -> tuple[ApiKey, str]:
        """Make a key for ``tenant``; return its record and its secret (shown only now)."""
        check_tenant(tenant)
        with self._lock:
            keys = dict(self._load())
            key_id = secrets.token_hex(6)
            secret = f"sl-{key_id}.{secrets.token_urlsafe(32)}"
            record = ApiKey(key_id, tenant, name, _hash(secret), time.time())
            keys[key_id] = record
            self._save(keys)
        logger.info("created key %s for tenant %s", key_id, tenant)
        return record, secret

    def revoke(self, key_id: str) -> bool:
        """Remove a key by id; False when there was none."""
        with self._lock:
            keys = dict(self._load())
            if keys.pop(key_id, None) is None:
                return False
            self._save(keys)
        return True

    def list(self) -> list[ApiKey]:
        """Every key record, oldest first."""
        with self._lock:
            return sorted(self._load().values(), key=lambda k: k.created)

    def authenticate(self, secret: str | None) -> ApiKey | None:
        """The key ``secret`` belongs to, or None (the hash is compared in constant time)."""
        if not secret:
            return None
        key_id = secret[3:].split(".", 1)[0] if secret.startswith("sl-") else ""
        with self._lock:
            record = self._load().get(key_id)
        expected = record.sha256 if record else _DUMMY_HASH
        same = hmac.compare_digest(_hash(secret), expected)
        return record if same and record is not None else None
