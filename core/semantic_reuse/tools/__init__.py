"""The tools above the library: the `semantic-reuse` CLI, the demos, calibration, benchmarks.

Nothing in the library imports this package (`make lint` checks it); these modules may use any
part of it, vLLM and the clients included.
"""
