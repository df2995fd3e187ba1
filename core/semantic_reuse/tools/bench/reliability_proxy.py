"""Real Redis faults for `bench reliability`: a redis-server of the bench's own that it
SIGKILLs and restarts, and a loopback TCP proxy in front of one that makes it slow or
drops its connections mid-reply.

The proxy runs on a thread of its own (its own event loop), so a delayed reply costs the
engine under test what a slow Redis would: a socket that does not answer, not a busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

ProxyMode = Literal["pass", "delay", "drop"]


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {limit_s} s")


class RedisServer:
    """A redis-server on a loopback port, without persistence (a restart comes back
    empty, so every key found after it was written after it)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.binary = binary
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port, 10)

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crashed host would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def keys(self, pattern: str) -> int:
        """Keys matching `pattern` now (a SCAN)."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=5)
        try:
            return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
        finally:
            client.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[RedisServer]:
        self.start()
        try:
            yield self
        finally:
            self.kill()


class RedisProxy:
    """Loopback TCP proxy to a Redis: `mode` "pass" forwards, "delay" holds every reply
    `delay_s` before forwarding it, "drop" forwards half of a reply and closes both
    connections. The mode may be changed at any time, from any thread."""

    def __init__(self, upstream_port: int, *, delay_s: float = 2.0) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.mode: ProxyMode = "pass"
        self.port = 0
        self.dropped = 0  # connections cut mid-reply
        self.delayed = 0  # replies held back
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="redis-proxy")  # fmt: skip
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))
        requests = asyncio.ensure_future(self._pump(client_r, server_w))
        try:
            await self._replies(server_r, client_w, server_w)
        finally:
            requests.cancel()
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _replies(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter,
        server: asyncio.StreamWriter,
    ) -> None:  # fmt: skip
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.mode == "delay":
                    self.delayed += 1
                    await asyncio.sleep(self.delay_s)
                elif self.mode == "drop":
                    self.dropped += 1
                    client.write(data[: max(1, len(data) // 2)])
                    with contextlib.suppress(OSError):
                        await client.drain()
                    return
                client.write(data)
                await client.drain()
