"""The checks that refuse a wheel before anything is sent to an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from farm.catalog import Catalog
from farm.errors import EXIT_USAGE, WheelRejected
from farm.publish import PublishRefused, PublishRequest, check_wheel, sha256_of
from farm.registries import IndexLocation, PypiserverRegistry
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
