"""Real second processes for the tests: a Python child that speaks in lines on stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[3]


class Child:
    """``python -c code args...`` run from the repository root; stderr goes to ``log``."""

    def __init__(self, code: str, *args: str, log: Path) -> None:
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, *args],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip

    def expect(self, prefix: str) -> str:
        """The next line that starts with ``prefix`` (AssertionError, with the child's stderr,
        if it exits first)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line.strip()
        self.proc.wait(timeout=60)
        raise AssertionError(
            f"the child exited ({self.proc.returncode}) before {prefix!r}: "
            f"{self.log.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as an out-of-memory killer or an operator would."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def release(self) -> None:
        """Close its stdin (the children here wait on it) and wait for it to exit."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=120)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
