"""What `farm publish` and the pipeline decide alike, before and at the index: the checks that
refuse a wheel before anything is sent, and the one answer to a file name clash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from farm.catalog import Catalog
from farm.errors import EXIT_USAGE, WheelRejected
from farm.publish import PublishRefused, PublishRequest, check_wheel, choose_file, sha256_of
from farm.registries import IndexLocation, PypiserverRegistry
from farm.simpleindex import RemoteFile
from farm.wheelfile import with_build_number
from tests.registries.wheels import EM_AARCH64, EM_X86_64, elf, make_wheel

PYPISERVER = PypiserverRegistry(kind="pypiserver", url="http://127.0.0.1:8080")
LOCATION = IndexLocation(
    registry="r",
    upload_url="http://127.0.0.1:8080/",
    simple_url="http://127.0.0.1:8080/simple/",
    read_url="http://127.0.0.1:8080/simple/",
    kind="pypiserver",
)
JP6 = "cp310-cp310-manylinux_2_35_aarch64"


def _request(wheel: Path, **changes: Any) -> PublishRequest:
    fields: dict[str, Any] = {"require_smoke": False, **changes}
    return PublishRequest(
        wheel=wheel, location=LOCATION, profile=PYPISERVER, credentials=None, **fields
    )


def test_a_corrupt_wheel_is_refused_as_bad_input_naming_the_rule(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, tag=JP6, files={"farm_probe/_c.so": elf(EM_X86_64)})
    with pytest.raises(WheelRejected) as refused:
        check_wheel(_request(wheel))
    assert refused.value.exit_code == EXIT_USAGE
    assert refused.value.message == (
        f"{wheel.name}: architecture: farm_probe/_c.so is x86_64 code, the wheel is tagged aarch64"
    )


def test_with_a_target_the_inspect_verdict_must_be_compatible(
    tmp_path: Path, catalog: Catalog
) -> None:
    jetpack6 = catalog.targets["jetpack6"].model
    fits = make_wheel(tmp_path / "a", tag=JP6, files={"farm_probe/_c.so": elf(EM_AARCH64)})
    assert check_wheel(_request(fits, target=jetpack6)).path == fits
    py311 = make_wheel(tmp_path / "b", tag="cp311-cp311-manylinux_2_35_aarch64")
    with pytest.raises(WheelRejected, match="incompatible with jetpack6: wheel is for cp311"):
        check_wheel(_request(py311, target=jetpack6))
    gpu = ("CUDAExecutionProvider",)
    with pytest.raises(WheelRejected, match="no CUDAExecutionProvider library"):
        check_wheel(_request(fits, target=jetpack6, expect_providers=gpu))


def test_the_smoke_record_is_asked_for_last(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, payload=b"x")
    with pytest.raises(PublishRefused, match="no passing smoke record"):
        check_wheel(_request(wheel, require_smoke=True))
    (tmp_path / "smoke-t.json").write_text(json.dumps({"wheel": wheel.name, "result": "passed"}))
    assert check_wheel(_request(wheel, require_smoke=True)).sha256 == sha256_of(wheel)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> dict[str, RemoteFile]:
    """The files the index lists for the project, by name (no network)."""
    files: dict[str, RemoteFile] = {}
    monkeypatch.setattr("farm.publish.project_files", lambda url, project, auth: dict(files))
    return files


def _listed(path: Path) -> RemoteFile:
    return RemoteFile(filename=path.name, url=f"http://h/{path.name}", sha256=sha256_of(path))


def _choose(wheel: Path, staging: Path) -> tuple[Path, RemoteFile | None]:
    request = _request(wheel)
    local = check_wheel(request)
    chosen, present = choose_file(request, local, lambda: staging, lambda _: None, lambda _: None)
    return chosen.path, present


def test_a_free_name_or_the_same_bytes_publish_the_wheel_itself(
    tmp_path: Path, index: dict[str, RemoteFile]
) -> None:
    wheel = make_wheel(tmp_path / "w", payload=b"ours")
    assert _choose(wheel, tmp_path / "staging") == (wheel, None)
    index[wheel.name] = _listed(wheel)
    assert _choose(wheel, tmp_path / "staging") == (wheel, index[wheel.name])
    assert not (tmp_path / "staging").exists()  # no candidate was made


def test_a_clash_gets_the_next_build_number_and_finds_its_own_earlier_copy(
    tmp_path: Path, index: dict[str, RemoteFile]
) -> None:
    earlier = make_wheel(tmp_path / "earlier", payload=b"an earlier build")
    index[earlier.name] = _listed(earlier)
    index["farm_probe-1.0-1-py3-none-any.whl"] = _listed(
        with_build_number(make_wheel(tmp_path / "other", payload=b"another"), 1, tmp_path / "o")
    )
    wheel = make_wheel(tmp_path / "w", payload=b"ours")
    staging = tmp_path / "staging"
    staging.mkdir()
    chosen, present = _choose(wheel, staging)
    assert chosen == staging / "farm_probe-1.0-2-py3-none-any.whl" and present is None
    index[chosen.name] = _listed(chosen)
    assert _choose(wheel, staging) == (chosen, index[chosen.name])
