"""The embedded registry's address comes from its own record only, and so do its credentials."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from farm.errors import EXIT_ENVIRONMENT, RegistryUnavailable
from farm.localregistry import LOCAL, NOT_RUNNING, LocalRegistry
from farm.registries import PypiserverRegistry, RegistryConfig


def _running(tmp_path: Path, url: str = "http://127.0.0.1:9999") -> LocalRegistry:
    local = LocalRegistry(tmp_path)
    local.root.mkdir(parents=True)
    record = {"url": url, "pid": os.getpid(), "port": 9999, "fallback": False}
    local.server_file.write_text(json.dumps(record))
    local.credentials_file.write_text(json.dumps({"username": "farm", "password": "generated"}))
    return local


def test_a_stopped_registry_has_no_url_to_fall_back_to(tmp_path: Path) -> None:
    local = LocalRegistry(tmp_path)
    with pytest.raises(RegistryUnavailable) as raised:
        local.profile()
    assert raised.value.message == NOT_RUNNING and raised.value.exit_code == EXIT_ENVIRONMENT
    config = local.with_local(RegistryConfig(profiles={}, source="built-in defaults"))
    assert config.profiles == {} and config.unavailable == {LOCAL: NOT_RUNNING}
    with pytest.raises(RegistryUnavailable, match="not running"):
        config.profile(LOCAL)


def test_a_stale_record_counts_as_stopped(tmp_path: Path) -> None:
    local = _running(tmp_path)
    record = json.loads(local.server_file.read_text())
    local.server_file.write_text(json.dumps({**record, "pid": 2**22 + 1}))  # beyond pid_max
    with pytest.raises(RegistryUnavailable):
        local.profile()
    assert local.credentials_for("http://127.0.0.1:9999/") is None


def test_a_running_registry_is_where_its_record_says(tmp_path: Path) -> None:
    local = _running(tmp_path)
    config = local.with_local(RegistryConfig(profiles={}, source="x"))
    assert config.profile(LOCAL) == PypiserverRegistry(
        kind="pypiserver", url="http://127.0.0.1:9999"
    )


def test_generated_credentials_go_to_the_recorded_url_only(tmp_path: Path) -> None:
    local = _running(tmp_path)
    stored = local.credentials_for("http://127.0.0.1:9999/")
    assert stored is not None and stored.password == "generated"
    assert local.credentials_for("http://127.0.0.1:99990/") is None
    assert local.credentials_for("http://elsewhere.example/") is None


def test_a_profile_file_may_redefine_local(tmp_path: Path) -> None:
    mine = PypiserverRegistry(kind="pypiserver", url="http://pypi.internal")
    config = LocalRegistry(tmp_path).with_local(RegistryConfig(profiles={LOCAL: mine}, source="f"))
    assert config.profile(LOCAL) == mine and config.unavailable == {}


def test_a_long_run_notices_the_registry_stopped_or_moved(tmp_path: Path) -> None:
    local = _running(tmp_path)
    local.require("http://127.0.0.1:9999/")
    _running(tmp_path / "moved", "http://127.0.0.1:7777").server_file.replace(local.server_file)
    with pytest.raises(RegistryUnavailable, match=r"moved to http://127\.0\.0\.1:7777"):
        local.require("http://127.0.0.1:9999/")
    local.server_file.unlink()  # what `farm registry stop` leaves
    with pytest.raises(RegistryUnavailable, match="not running"):
        local.require("http://127.0.0.1:9999/")
