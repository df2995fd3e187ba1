"""Redis with AUTH (requirepass, an ACL user with least privilege) and TLS (``rediss://``,
a CA made here with the `openssl` command, and client certificates), on real redis-server
processes: exact reuse works through each, a wrong password or CA degrades to the other
tiers without failing a request, and no password reaches a log line or a repr."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseCache, SemanticReuseLLM
from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine, ReuseKind
from semantic_reuse.spi import RedisTier
from tests.conftest import PrivateRedis, free_port

PASSWORD = "s3cret-requirepass-Zq8"
ALICE_PASSWORD = "alice-acl-pw-Xk2"
PREFIX = "authtest"
#: Least privilege for the Redis tier: its own keys and the commands it sends (redis-py's
#: CLIENT SETINFO on connect may fail: it ignores that).
ALICE = ("alice", "on", f">{ALICE_PASSWORD}", f"~{PREFIX}:*",
         "+get", "+set", "+unlink", "+scan", "+ping")  # fmt: skip
AUTH_ARGS = ("--requirepass", PASSWORD, "--user", *ALICE)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates() -> Iterator[Path]:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test CA (apt-get install openssl)")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        days = ("-days", "2")
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{folder}/ca.key",
            "-out",
            f"{folder}/ca.crt",
            *days,
            "-subj",
            "/CN=semantic-reuse test CA",
        )
        (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        for who in ("server", "client"):
            _openssl(
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                f"{folder}/{who}.key",
                "-out",
                f"{folder}/{who}.csr",
                "-subj",
                f"/CN={who}",
            )
            _openssl("x509", "-req", "-in", f"{folder}/{who}.csr", "-CA", f"{folder}/ca.crt",
                     "-CAkey", f"{folder}/ca.key", "-CAcreateserial", "-out", f"{folder}/{who}.crt",
                     *days, "-extfile", f"{folder}/san.ext")  # fmt: skip
        # Another CA, which did not sign the server's certificate.
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{folder}/other.key",
                 "-out", f"{folder}/other.crt", *days, "-subj", "/CN=another CA")  # fmt: skip
        yield folder


def _server(port: int, *args: str) -> Iterator[PrivateRedis]:
    """A private redis-server answering on `port` (the TLS port when `args` name one)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH (make test installs it when it can)")
    with tempfile.TemporaryDirectory() as folder:
        server = PrivateRedis(port, Path(folder), args=args)
        server.start()
        yield server
        server.stop()


@pytest.fixture
def auth_redis() -> Iterator[PrivateRedis]:
    yield from _server(free_port(), *AUTH_ARGS)


def tls_args(certs: Path, port: int, clients: str) -> tuple[str, ...]:
    return ("--port", "0", "--tls-port", str(port), "--tls-cert-file", f"{certs}/server.crt",
            "--tls-key-file", f"{certs}/server.key", "--tls-ca-cert-file", f"{certs}/ca.crt",
            "--tls-auth-clients", clients, *AUTH_ARGS)  # fmt: skip


@pytest.fixture
def tls_redis(certificates: Path) -> Iterator[PrivateRedis]:
    port = free_port()
    yield from _server(port, *tls_args(certificates, port, "no"))


@pytest.fixture
def mtls_redis(certificates: Path) -> Iterator[PrivateRedis]:
    """TLS that also asks every client for a certificate signed by the CA."""
    port = free_port()
    yield from _server(port, *tls_args(certificates, port, "yes"))


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every line the library logs, at every level, with tracebacks and their variables."""
    lines: list[str] = []
    logger.enable("semantic_reuse")
    logger.enable("langchain_semantic_reuse")
    sinks = [logger.add(lines.append, level="TRACE", backtrace=True, diagnose=diagnose,
                        format="{level} {name} {message} {extra} {exception}")
             for diagnose in (False, True)]  # fmt: skip
    yield lines
    for sink in sinks:
        logger.remove(sink)
    logger.disable("semantic_reuse")
    logger.disable("langchain_semantic_reuse")


def exact_config(url: str, **cache: Any) -> HandlerConfig:
    """Exact tiers only (memory and Redis): what is under test is the Redis connection."""
    return HandlerConfig(
        features={"enable_semantic_reuse": False, "enable_nlp_enhancement": False},
        cache={"redis_url": url, "redis_prefix": PREFIX, **cache},
        performance={"redis_timeout_s": 2.0},
    )


async def model(prompt: object, params: object) -> str:
    return f"answer to {prompt}"


@pytest.fixture
async def engines() -> AsyncIterator[list[ReuseEngine]]:
    made: list[ReuseEngine] = []
    yield made
    for engine in made:
        await engine.aclose()


async def reused_through_redis(config: HandlerConfig, engines: list[ReuseEngine]) -> None:
    """One engine answers and stores; a second one (empty memory) gets it from Redis."""
    first, second = ReuseEngine(config), ReuseEngine(config)
    engines += [first, second]
    backend = CallableBackend(model)
    answered = await first.generate("What is TLS?", backend)
    assert answered.info.kind is ReuseKind.MISS
    await first.flush()
    assert first.stats()["counters"]["stores_total"]["outcome=ok,tier=redis"] == 1
    again = await second.generate("What is TLS?", backend)
    assert again.info.kind is ReuseKind.EXACT
    assert again.info.tier == "redis"
    assert again.text == answered.text


async def test_exact_reuse_through_requirepass(
    auth_redis: PrivateRedis, engines: list[ReuseEngine]
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    await reused_through_redis(exact_config(url), engines)


async def test_exact_reuse_through_an_acl_user_with_least_privilege(
    auth_redis: PrivateRedis, engines: list[ReuseEngine]
) -> None:
    url = f"redis://alice:{ALICE_PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    await reused_through_redis(exact_config(url), engines)
    tier = RedisTier(url, prefix=PREFIX, timeout_s=2.0)
    assert await tier.clear("default") >= 1  # SCAN + UNLINK are all clear() needs
    await tier.aclose()


async def test_exact_reuse_through_tls_with_the_test_ca(
    tls_redis: PrivateRedis, certificates: Path, engines: list[ReuseEngine]
) -> None:
    url = f"rediss://alice:{ALICE_PASSWORD}@127.0.0.1:{tls_redis.port}/0"
    config = exact_config(url, redis_tls_ca_file=certificates / "ca.crt")
    await reused_through_redis(config, engines)


async def test_exact_reuse_through_mutual_tls(
    mtls_redis: PrivateRedis, certificates: Path, engines: list[ReuseEngine]
) -> None:
    url = f"rediss://:{PASSWORD}@127.0.0.1:{mtls_redis.port}/0"
    config = exact_config(
        url,
        redis_tls_ca_file=certificates / "ca.crt",
        redis_tls_cert_file=certificates / "client.crt",
        redis_tls_key_file=certificates / "client.key",
    )
    await reused_through_redis(config, engines)


async def degrades(config: HandlerConfig, engines: list[ReuseEngine]) -> None:
    """Redis refuses every call: requests are answered, memory still reuses, errors counted."""
    engine = ReuseEngine(config)
    engines.append(engine)
    backend = CallableBackend(model)
    for prompt in ("What is a CA?", "What is a certificate?", "What is AUTH?", "What is a CA?"):
        result = await engine.generate(prompt, backend)
        await engine.flush()
        assert result.text == f"answer to {prompt}"
    assert result.info.kind is ReuseKind.EXACT
    assert result.info.tier == "memory"
    counters = engine.stats()["counters"]
    assert counters["errors_total"]["component=redis"] >= 3
    assert engine.stats()["tiers"]["redis"]["breaker"] == "open"
    assert "outcome=ok,tier=redis" not in counters.get("stores_total", {})


@pytest.mark.parametrize("user", ["", "alice"])
async def test_a_wrong_password_degrades_to_the_other_tiers(
    auth_redis: PrivateRedis, engines: list[ReuseEngine], user: str, captured_logs: list[str]
) -> None:
    url = f"redis://{user}:wrong-{PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    await degrades(exact_config(url), engines)
    # The failures were logged (the breaker's WARNING names the error)...
    assert any(line.startswith("WARNING") and "redis" in line for line in captured_logs)
    assert not [line for line in captured_logs if PASSWORD in line]  # ...without a password


async def test_no_password_and_a_wrong_ca_degrade_too(
    tls_redis: PrivateRedis,
    certificates: Path,
    engines: list[ReuseEngine],
    captured_logs: list[str],
) -> None:
    base = f"127.0.0.1:{tls_redis.port}/0"
    await degrades(
        exact_config(f"rediss://{base}", redis_tls_ca_file=certificates / "ca.crt"), engines
    )
    wrong_ca = exact_config(
        f"rediss://:{PASSWORD}@{base}", redis_tls_ca_file=certificates / "other.crt"
    )
    await degrades(wrong_ca, engines)
    plain = exact_config(f"redis://:{PASSWORD}@{base}")  # TLS port, plain client
    await degrades(plain, engines)
    assert not [line for line in captured_logs if PASSWORD in line]


async def test_mutual_tls_without_a_client_certificate_degrades(
    mtls_redis: PrivateRedis, certificates: Path, engines: list[ReuseEngine]
) -> None:
    url = f"rediss://:{PASSWORD}@127.0.0.1:{mtls_redis.port}/0"
    await degrades(exact_config(url, redis_tls_ca_file=certificates / "ca.crt"), engines)


def test_tls_files_need_a_rediss_url(certificates: Path) -> None:
    with pytest.raises(ValueError, match="rediss://") as caught:
        HandlerConfig(cache={"redis_url": f"redis://:{PASSWORD}@h:1/0",
                             "redis_tls_ca_file": certificates / "ca.crt"})  # fmt: skip
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ValueError, match="redis_tls_cert_file"):
        HandlerConfig(cache={"redis_url": "rediss://h:1/0",
                             "redis_tls_key_file": certificates / "client.key"})  # fmt: skip


async def test_no_repr_shows_a_password(
    auth_redis: PrivateRedis, engines: list[ReuseEngine], captured_logs: list[str]
) -> None:
    url = f"redis://alice:{ALICE_PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    config = exact_config(url)
    engine = ReuseEngine(config)
    engines.append(engine)
    await engine.generate("What is ACL?", CallableBackend(model))
    await engine.flush()
    assert engine.cache.redis is not None
    shown = [
        repr(config), str(config), repr(config.cache), str(config.cache),
        repr(engine.cache.redis), str(engine.cache.redis), repr(engine), repr(engine.cache),
        repr(engine.stats()), repr(SemanticReuseCache(engine)),
        repr(ChatSemanticReuse(config=config)), repr(SemanticReuseLLM(config=config)),
        repr(ChatSemanticReuse(config=config)._identifying_params),
    ]  # fmt: skip
    from llama_index.llms.semantic_reuse import SemanticReuseLLM as LlamaLLM

    shown.append(repr(LlamaLLM(config=config)))
    for text in shown:
        assert ALICE_PASSWORD not in text, text
    assert "alice:***@" in repr(config)
    assert not [line for line in captured_logs if ALICE_PASSWORD in line]
