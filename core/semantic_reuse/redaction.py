"""What may be shown of a URL or an error: no passwords, no tokens, one line.

`redact_url` masks the secrets of a URL for printing (a Redis URL with its password, an
endpoint with a key in its query string); `endpoint_scope` is the non-secret identity of
an endpoint that may be stored (scheme, host, port and path); `describe_error` turns an
exception into the one line a WARNING carries (its type and message, secrets masked, no
traceback).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "describe_error", "endpoint_scope", "redact_text", "redact_url"]

MASK = "***"
#: Query parameters whose values are masked: keys, tokens, passwords, signatures.
_SECRET_QUERY = re.compile(r"key|token|secret|pass|pwd|auth|sig|credential", re.IGNORECASE)
#: ``scheme://userinfo@`` anywhere in a text.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]*)@")
_ERROR_CHARS = 300


def _mask_userinfo(userinfo: str) -> str:
    user, sep, _password = userinfo.partition(":")
    return f"{user}:{MASK}" if sep else MASK


def redact_text(text: str) -> str:
    """`text` with the user information of every URL in it masked."""
    return _USERINFO.sub(
        lambda m: f"{m.group('scheme')}{_mask_userinfo(m.group('userinfo'))}@", text
    )


def redact_url(url: str) -> str:
    """`url` safe to print: a password (or a bare user token) and secret-looking query
    values replaced by ``***``; a URL without secrets is returned unchanged.

    >>> redact_url("redis://:s3cret@cache.example:6379/0")
    'redis://:***@cache.example:6379/0'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable (a bad IPv6 literal): mask what looks like userinfo
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{_mask_userinfo(userinfo)}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_QUERY.search(name) for name, _ in pairs):
            masked = [(n, MASK if _SECRET_QUERY.search(n) else v) for n, v in pairs]
            query = urlencode(masked, safe="*")
    # Edit the text in place (urlunsplit would drop the empty netloc of unix:///path): the
    # netloc is the first occurrence of itself, the query starts at the first "?".
    if netloc != parts.netloc:
        url = url.replace(parts.netloc, netloc, 1)
    if query != parts.query:
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


def endpoint_scope(url: str) -> str:
    """The identity of an endpoint that may be stored and shown: scheme, host, port and
    path, without user information, query string or fragment (trailing ``/`` dropped).

    >>> endpoint_scope("https://user:pw@api.example/v1/?api_key=k")
    'https://api.example/v1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url).split("?", 1)[0].split("#", 1)[0].rstrip("/")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")


def describe_error(error: BaseException | None, limit: int = 0) -> str:
    """One line for a log: the exception's type and message, URL secrets masked, cut to
    `limit` characters (0: a few hundred); never a traceback."""
    if error is None:
        return "no error"
    limit = limit or _ERROR_CHARS
    message = " ".join(redact_text(str(error)).split())
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    name = type(error).__name__
    return f"{name}: {message}" if message else name
