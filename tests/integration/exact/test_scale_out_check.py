"""`python -m semantic_reuse.tools.scale_out` (docs/operations.md, Scale-out): written by one
process, read by another, through a real 3-master Redis Cluster; exit codes say the outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests import REPO_ROOT
from tests.redis_cluster import LocalRedisCluster


def _run(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.scale_out", action],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMANTIC_REUSE_CACHE__")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "core"), str(REPO_ROOT / "integrations")])
    return env | {f"SEMANTIC_REUSE_CACHE__{k.upper()}": v for k, v in settings.items()}


def test_write_on_one_host_read_on_another_through_a_redis_cluster(
    redis_clusters: Callable[..., LocalRedisCluster], tmp_path: Path
) -> None:
    cluster = redis_clusters(masters=3)
    env = _env(redis_url=cluster.url, redis_cluster="true", redis_prefix="check")
    unread = _run("read", env)
    assert unread.returncode == 1, unread.stderr[-2000:]  # nothing written yet
    assert "0 of 3 answers came from the shared tiers" in unread.stdout
    assert _keys(cluster) == 0  # a reader stores nothing

    written = _run("write", env)
    assert written.returncode == 0, written.stderr[-2000:]
    assert written.stdout.count("-> miss") == 3
    assert "shared: Redis Cluster redis://127.0.0.1:" in written.stdout
    read = _run("read", env)
    assert read.returncode == 0, read.stdout + read.stderr[-2000:]
    assert read.stdout.count("-> exact (tier redis): 'answer written by ") == 3
    assert "3 of 3 answers came from the shared tiers" in read.stdout
    assert _keys(cluster) == 3

    clear = _run("clear", env)
    assert clear.returncode == 0, clear.stderr[-2000:]
    assert _keys(cluster) == 0
    # what stays: the namespace's lifecycle record, which retires the copies other
    # processes still hold in memory (operations.md, Answer lifecycle)
    assert _keys(cluster, records=True) == 1
    assert _run("read", env).returncode == 1


def _keys(cluster: LocalRedisCluster, *, records: bool = False) -> int:
    """The answers' keys on every node (or, with `records`, the lifecycle records')."""
    total = 0
    for server in cluster.servers:
        with server.client() as node:
            total += sum(1 for key in node.scan_iter() if ("#lifecycle:" in str(key)) == records)
    return total


def test_nothing_shared_is_refused() -> None:
    done = _run("read", _env())
    assert done.returncode == 2
    assert "nothing is shared" in done.stdout
