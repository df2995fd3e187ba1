"""Exact reuse: the same request again, from memory, host shared memory or Redis."""
