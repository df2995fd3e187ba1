"""The exceptions semantic-reuse raises at its public boundaries: one rooted hierarchy.

Every error the library raises on purpose is a `SemanticReuseError`, so that
``except SemanticReuseError`` catches them all. Errors that mean bad input also subclass
the built-in a caller would expect (``ValueError``, ``TypeError``), and errors of a
component that cannot be used subclass ``RuntimeError``: code written against the
built-ins keeps working.

Configuration given as `HandlerConfig` fields is validated by pydantic, whose
``ValidationError`` (a ``ValueError``) names the field; it is not re-wrapped.
"""

from __future__ import annotations

__all__ = [
    "AnswerDecodeError",
    "AnswerTooLargeError",
    "ComponentDisabledError",
    "ComponentUnavailableError",
    "ConfigurationError",
    "InvalidRequestError",
    "InvalidTypeError",
    "SemanticReuseError",
    "SharedMemoryRefusedError",
    "StoreInUseError",
    "UsageError",
    "shown",
]


class SemanticReuseError(Exception):
    """The root of every exception semantic-reuse raises on purpose."""


class InvalidRequestError(SemanticReuseError, ValueError):
    """An argument has a value the call cannot take (the message names the argument)."""


class InvalidTypeError(SemanticReuseError, TypeError):
    """An argument has the wrong type (the message names the argument)."""


class ConfigurationError(SemanticReuseError, ValueError):
    """A combination of settings or constructor arguments that cannot work together."""


class AnswerDecodeError(SemanticReuseError, ValueError):
    """A cached value that is not a valid answer of this codec version."""


class AnswerTooLargeError(SemanticReuseError, ValueError):
    """An answer whose encoding exceeds the configured size cap."""


class ComponentUnavailableError(SemanticReuseError, RuntimeError):
    """A component cannot be used: a model or package is missing, or it was closed."""


class SharedMemoryRefusedError(ComponentUnavailableError):
    """Host shared memory that this user cannot trust: a segment, its lock file or the
    per-user secret file owned by another user, open to others, or written with another
    secret. The shared tier refuses it and requests fall through to the next tier."""


class StoreInUseError(ComponentUnavailableError):
    """An embedded vector store's folder is open in another process."""


class ComponentDisabledError(ComponentUnavailableError):
    """A component that is off for the life of this process: it is not tried again."""


class UsageError(SemanticReuseError, RuntimeError):
    """A call made in a state that does not allow it (e.g. a sync wrapper on its own loop)."""


def shown(value: object, limit: int = 60) -> str:
    """`value` as an error message may quote it: the repr of a short str, number, bool or
    None, cut to `limit` characters; only the type of anything else (a repr may be huge,
    recurse without end, raise, or hold what must not be logged)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a very large int"
    if value is None or isinstance(value, str | int | float | bool):
        text = repr(value[: limit + 1] if isinstance(value, str) else value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    return f"a {type(value).__name__}"
