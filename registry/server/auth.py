"""Bearer tokens for the write operations of the API.

Reads are open; every write (POST, PUT, PATCH, DELETE) needs
``Authorization: Bearer <token>`` with a token from `Settings.tokens`:

- no tokens configured: every write is refused (403) and the message says
  how to configure them;
- header missing (or not a bearer token): 401 with ``WWW-Authenticate: Bearer``;
- a token that matches none: 403.

Tokens come from ``REGISTRY_TOKENS`` (comma-separated) and/or a token file
(one per line, blank lines and ``#`` comments skipped): `registry serve
--token-file PATH`, or ``REGISTRY_TOKEN_FILE`` for the worker processes.
Comparison uses `hmac.compare_digest` against every configured token.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from fastapi import Request
from fastapi.security import HTTPBearer

from registry.errors import RegistryError
from registry.server.handlers import ApiError

__all__ = ["SAFE_METHODS", "bearer_scheme", "check_write_access", "load_tokens"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TOKEN_LENGTH = 4096

# Only documents the scheme in OpenAPI; `check_write_access` does the checking.
bearer_scheme = HTTPBearer(auto_error=False, description="A token from the server's "
                           "REGISTRY_TOKENS or --token-file; needed for every write.")

_NO_TOKENS = ("writes are disabled: the server has no tokens configured; start it with "
              "REGISTRY_TOKENS=token1,token2 or `registry serve --token-file PATH` (one token "
              "per line)")


def check_write_access(request: Request) -> None:
    """Raise `ApiError` (401/403) unless the request carries a configured bearer token."""
    tokens: frozenset[str] = request.app.state.settings.tokens
    if not tokens:
        raise ApiError(403, "writes_disabled", _NO_TOKENS)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise ApiError(401, "unauthorized", "this operation needs `Authorization: Bearer "
                       "<token>`", headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(credentials, tokens):
        raise ApiError(403, "forbidden", "the bearer token is not valid on this server",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def token_matches(candidate: str, tokens: frozenset[str]) -> bool:
    """Constant-time comparison against every token (no early exit on a match)."""
    given = candidate.encode("utf-8", "surrogateescape")[:MAX_TOKEN_LENGTH]
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token.encode("utf-8", "surrogateescape"))
    return found


def load_tokens(env: Mapping[str, str] | None = None,
                token_file: str | Path | None = None) -> frozenset[str]:
    """Tokens from ``REGISTRY_TOKENS`` and from `token_file` (or ``REGISTRY_TOKEN_FILE``)."""
    env = os.environ if env is None else env
    tokens = {t.strip() for t in env.get("REGISTRY_TOKENS", "").split(",")}
    path = token_file or env.get("REGISTRY_TOKEN_FILE")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read the token file ({exc.strerror}); give "
                                "a readable file with one token per line") from None
        tokens |= {line.strip() for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")}
    tokens.discard("")
    bad = [t for t in tokens if len(t) > MAX_TOKEN_LENGTH or any(c.isspace() for c in t)]
    if bad:
        raise RegistryError(f"{len(bad)} configured token(s) contain whitespace or are longer "
                            f"than {MAX_TOKEN_LENGTH} characters; fix REGISTRY_TOKENS or the "
                            "token file")
    return frozenset(tokens)
