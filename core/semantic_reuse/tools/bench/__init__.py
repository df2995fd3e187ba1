"""Benchmarks that ship with the package: `semantic-reuse bench ...`."""
