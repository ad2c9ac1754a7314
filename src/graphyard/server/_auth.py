"""Who is calling: API keys (or bearer tokens) mapped to user identities.

- ``GRAPHYARD_API_KEYS='{"sk-alice": "alice", "sk-bob": "bob"}'`` maps keys, sent as
  ``x-api-key: ...`` (what the LangGraph SDK sends) or ``Authorization: Bearer ...``;
- ``GRAPHYARD_AUTH=mypkg.auth:authenticate`` plugs in any function of the request headers
  that returns a user id or ``None`` (JWT validation, an SSO gateway's header...), sync or
  async;
- with neither, everyone is ``anonymous`` and the server refuses to bind anything but
  loopback unless told ``--insecure``.

Keys are compared in constant time. This module never logs a key.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["ANONYMOUS", "Authenticator", "api_key_authenticator", "load_authenticator"]

ANONYMOUS = "anonymous"

Authenticator = Callable[[Mapping[str, str]], "str | Awaitable[str | None] | None"]
"""Headers in (lower-case names), user id out; ``None`` means not authenticated."""


def _credential(headers: Mapping[str, str]) -> str | None:
    if key := headers.get("x-api-key"):
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def api_key_authenticator(keys: Mapping[str, str]) -> Authenticator:
    """An authenticator for a fixed key -> user table.

    >>> auth = api_key_authenticator({"sk-1": "alice"})
    >>> auth({"x-api-key": "sk-1"}), auth({"authorization": "Bearer sk-1"}), auth({})
    ('alice', 'alice', None)
    """
    table = [(key.encode(), user) for key, user in keys.items()]

    def authenticate(headers: Mapping[str, str]) -> str | None:
        given = _credential(headers)
        if given is None:
            return None
        found = None
        for key, user in table:  # no early exit: the time taken says nothing about the keys
            if hmac.compare_digest(key, given.encode()):
                found = user
        return found

    return authenticate


def load_authenticator(api_keys: Mapping[str, str], spec: str | None) -> Authenticator | None:
    """The configured authenticator, or ``None`` when auth is off."""
    if spec:
        from graphyard._runtime import load_graph as _load  # same "module:attr" loader

        fn = _load(spec)
        if not callable(fn):
            from graphyard.errors import ConfigError

            raise ConfigError(f"GRAPHYARD_AUTH={spec} is not a function of the request headers")
        return fn  # type: ignore[no-any-return]
    if api_keys:
        return api_key_authenticator(api_keys)
    return None


async def authenticate(auth: Authenticator | None, headers: Mapping[str, str]) -> str | None:
    if auth is None:
        return ANONYMOUS
    result: Any = auth(headers)
    if inspect.isawaitable(result):
        result = await result
    return str(result) if result else None
