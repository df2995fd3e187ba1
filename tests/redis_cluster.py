"""A real Redis Cluster of redis-server processes on free loopback ports, for tests.

`LocalRedisCluster.start()` starts ``masters * (1 + replicas)`` servers with
``--cluster-enabled yes`` and joins them with ``redis-cli --cluster create``; `kill()` sends
a master SIGKILL, and `failed_over()` says when its replica serves its slots. A low
``cluster-node-timeout`` keeps a failover to a few seconds.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aredis


@dataclass
class ClusterServer:
    """One redis-server of the cluster."""

    port: int
    bus_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)


@dataclass
class LocalRedisCluster:
    """`masters` masters with `replicas` replicas each, under `root`."""

    root: Path
    masters: int = 3
    replicas: int = 0
    node_timeout_ms: int = 1000
    servers: list[ClusterServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL of the first server (a client discovers the others from it)."""
        return f"redis://{self.servers[0].address}/0"

    def start(self) -> None:
        """Start and join the servers; on failure, stop what was started and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        count = self.masters * (1 + self.replicas)
        ports = _free_ports(2 * count)
        for index in range(count):
            server = ClusterServer(
                ports[2 * index], ports[2 * index + 1], self.root / f"node{index}"
            )
            server.folder.mkdir(parents=True)
            server.process = subprocess.Popen(
                [
                    binary, "--port", str(server.port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-port", str(server.bus_port),
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # A replica that never synced refuses to fail over: sync at once, and
                    # let any replica stand for election.
                    "--repl-diskless-sync-delay", "0",
                    "--cluster-replica-validity-factor", "0",
                    "--save", "", "--appendonly", "no", "--dir", str(server.folder),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self.servers.append(server)
        for server in self.servers:
            _wait_listening(server.port)
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
                *(s.address for s in self.servers),
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        # redis-cli returns once the nodes agree on the slots; the cluster serves once every
        # node says so and every replica has its master's data.
        _wait(self._ready, "the cluster to be ready")

    def _ready(self) -> bool:
        for server in self.servers:
            with server.client() as node:
                if node.cluster("INFO")["cluster_state"] != "ok":
                    return False
                info = node.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
        return True

    def master_of(self, key: str) -> ClusterServer:
        """The live master serving the slot of `key`."""
        with self._live().client() as node:
            slot = int(node.cluster("KEYSLOT", key))
            for start, end, master, *_ in node.cluster("SLOTS"):
                if start <= slot <= end:
                    return next(s for s in self.servers if s.port == int(master[1]))
        raise LookupError(f"no master serves slot {slot}")

    def replicate(self, master: ClusterServer) -> None:
        """Wait until every write `master` acknowledged has reached its replicas."""
        with master.client() as node:
            acknowledged = node.execute_command("WAIT", self.replicas, 10_000)
        if acknowledged < self.replicas:
            raise RuntimeError(f"{acknowledged} of {self.replicas} replicas caught up")

    def kill(self, server: ClusterServer) -> None:
        """SIGKILL, as a crash: no shutdown, no last word to the cluster."""
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        server.process = None

    async def failed_over(self, dead: ClusterServer) -> bool:
        """Does a live node report every slot served by a live master?"""
        node = aredis.Redis(port=self._live().port, socket_timeout=2, decode_responses=True)
        try:
            if (await node.cluster("INFO"))["cluster_state"] != "ok":
                return False
            slots = await node.cluster("SLOTS")
        finally:
            await node.aclose()
        return all(int(master[1]) != dead.port for _, _, master, *_ in slots)

    def _live(self) -> ClusterServer:
        return next(s for s in self.servers if s.process is not None)

    def stop(self) -> None:
        for server in self.servers:
            if server.process is not None:
                server.process.kill()
                server.process.wait()
                server.process = None


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open while they are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for held in sockets:
            held.bind(("127.0.0.1", 0))
        return [int(held.getsockname()[1]) for held in sockets]
    finally:
        for held in sockets:
            held.close()


def _wait_listening(port: int) -> None:
    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        return True

    _wait(listening, f"redis-server on port {port}")


def _wait(condition: object, what: str, limit_s: float = 30) -> None:
    """Poll a start-up condition another process decides (bounded; a safety net)."""
    assert callable(condition)
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
