"""The property runs' tally: printed at the end of the session, and written as JSON to
`$SEMANTIC_REUSE_PROPERTY_REPORT` when it is set."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.scopes.cases import TALLY, TOTAL_CASES

_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    write = terminalreporter.write_line
    write(f"scope isolation properties (target {TOTAL_CASES} cases):")
    for path, counts in TALLY.items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        write(f"  {path:22} {shown}")
    total = sum(c["probes"] for c in TALLY.values())
    exposed = sum(c["exposed"] for c in TALLY.values())
    leaks = sum(c["leaks"] for c in TALLY.values())
    write(
        f"  all paths: {total} cases ({exposed} with another scope's answer stored), {leaks} leaks"
    )
    report = os.environ.get("SEMANTIC_REUSE_PROPERTY_REPORT")
    if report:
        data = {
            "target_cases": TOTAL_CASES,
            "cases": total,
            "exposed": exposed,
            "leaks": leaks,
            "seconds": round(time.monotonic() - _STARTED, 1),
            "paths": {path: dict(counts) for path, counts in TALLY.items()},
        }
        Path(report).write_text(json.dumps(data, indent=2) + "\n")
