"""The `server` section: keys are secrets, each names one tenant, tenants are namespaces."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from semantic_reuse import HandlerConfig
from semantic_reuse.server.launch import fold_api_keys, loopback_unless_keys


def test_keys_never_show() -> None:
    config = HandlerConfig(server={"tenants": {"acme": ["sk-secret-1"]}, "admin_key": "sk-adm"})
    shown = repr(config) + str(config) + repr(config.server)
    assert "sk-secret-1" not in shown
    assert "sk-adm" not in shown
    assert config.server.key_tenants() == {"sk-secret-1": "acme"}


@pytest.mark.parametrize(
    "tenants",
    [{"acme": ["k"], "globex": ["k"]}, {"acme": [""]}, {"bad tenant": ["k"]}],
)
def test_bad_tenants_are_refused_without_quoting_keys(tenants: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError) as refused:
        HandlerConfig(server={"tenants": tenants})
    assert "tenants" in str(refused.value)
    assert "'k'" not in str(refused.value)


def test_tenants_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIC_REUSE_SERVER__TENANTS", '{"acme": ["k1", "k2"]}')
    assert HandlerConfig().server.key_tenants() == {"k1": "acme", "k2": "acme"}


def test_api_key_flag_is_a_key_of_the_default_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "from-env")
    config = HandlerConfig()
    fold_api_keys(config, ["from-flag"])
    assert config.server.key_tenants() == {"from-flag": "default", "from-env": "default"}
    assert loopback_unless_keys(config, "0.0.0.0") == "0.0.0.0"


def test_no_keys_binds_loopback_only() -> None:
    config = HandlerConfig()
    assert loopback_unless_keys(config, "0.0.0.0") == "127.0.0.1"
    assert loopback_unless_keys(config, None) == "127.0.0.1"
    assert loopback_unless_keys(config, "::1") == "::1"
