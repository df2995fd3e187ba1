"""The test suite: `unit/` (plain Python), `integration/` (real models and Redis),
`e2e/` (real vLLM); see tests/README.md."""

from pathlib import Path

#: The repository's root folder (the tests live at several depths below it).
REPO_ROOT = Path(__file__).resolve().parents[1]
