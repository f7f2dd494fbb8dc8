"""Secrets out of anything the project writes or shows: credentials in URLs, values under secret-looking keys."""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "***"
_SECRET = r"token|secret|password|passwd|api_key|apikey|credential"
SECRET_KEY = re.compile(_SECRET, re.IGNORECASE)
# user:password@ (the password may hold "/", as AWS secret keys do) or a bare user/token@
URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)(?:[^\s@/:]*:[^\s@]*|[^\s@/:]+)@")
SECRET_QUERY = re.compile(rf"(\b\w*(?:{_SECRET})\w*=)[^&\s]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """`scheme://user:pass@host` -> `scheme://***@host`; `?api_key=abc` -> `?api_key=***`."""
    return SECRET_QUERY.sub(rf"\1{REDACTED}", URL_USERINFO.sub(rf"\1{REDACTED}@", text))


def redact(value: object) -> object:
    """Recursively blank values under secret-looking keys and credentials in any string (keys included)."""
    if isinstance(value, Mapping):
        return {
            (redact_text(k) if isinstance(k, str) else k): REDACTED if SECRET_KEY.search(str(k)) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value
