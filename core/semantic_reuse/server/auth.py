"""Who is calling: the tenant of a bearer key, the admin key, the namespace of a request.

With tenants configured (`server.tenants`), every /v1 request needs one of their keys, and
its namespace is the key's tenant; the namespace header may only narrow it further
(``<tenant>.<header>``), never leave it. With no tenants, no key is asked (the server then
listens on loopback only) and the namespace is the header's, else ``default``.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.datastructures import Headers

from semantic_reuse.config import ServerConfig
from semantic_reuse.errors import SemanticReuseError
from semantic_reuse.request import DEFAULT_NAMESPACE, validate_namespace
from semantic_reuse.server.errors import HTTPError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def bearer(headers: Headers) -> str | None:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Tenants:
    """The key -> tenant map (keys compared as digests, in constant time each)."""

    def __init__(self, config: ServerConfig) -> None:
        self._keys = [(_digest(k), t) for k, t in config.key_tenants().items()]
        admin = config.admin_key
        self._admin = _digest(admin.get_secret_value()) if admin is not None else None
        self._header = config.namespace_header

    @property
    def open(self) -> bool:
        """No keys: anyone who can reach the (loopback) server may call it."""
        return not self._keys

    def tenant(self, headers: Headers) -> str | None:
        """The caller's tenant (None when no keys are configured); raises 401."""
        if self.open:
            return None
        key = bearer(headers)
        if key is None:
            raise HTTPError(401, "Missing API key: send 'Authorization: Bearer <key>'.",
                            code="invalid_api_key")  # fmt: skip
        digest = _digest(key)
        found = None
        for known, tenant in self._keys:
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is None:
            raise HTTPError(401, "Incorrect API key provided.", code="invalid_api_key")
        return found

    def namespace(self, tenant: str | None, headers: Headers) -> str:
        """The request's namespace: the tenant, narrowed by the namespace header."""
        asked = headers.get(self._header)
        name = tenant or DEFAULT_NAMESPACE
        if asked:
            name = f"{tenant}.{asked}" if tenant else asked
        try:
            return validate_namespace(name, argument=self._header)
        except SemanticReuseError as exc:
            raise HTTPError(400, str(exc), param=self._header) from None

    def check_admin(self, headers: Headers) -> None:
        if self._admin is None:
            raise HTTPError(403, "The admin endpoints are off: set server.admin_key.",
                            code="admin_disabled")  # fmt: skip
        key = bearer(headers)
        if key is None or not hmac.compare_digest(_digest(key), self._admin):
            raise HTTPError(401, "Missing or wrong admin key.", code="invalid_api_key")
