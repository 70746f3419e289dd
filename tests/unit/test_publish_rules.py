"""The publish stage's local decisions: the checks before anything is sent, the answer to a
file name clash (the same for `farm publish` and the pipeline), retry policy, failure
classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from farm.catalog import Catalog
from farm.credentials import Credentials
from farm.errors import (
    EXIT_USAGE,
    CredentialsRejected,
    PublishRefused,
    RegistryError,
    UsageError,
    WheelRejected,
)
from farm.publish import (
    GITLAB_PYPI_VERSION,
    PublishRequest,
    RetryPolicy,
    _classify,
    check_wheel,
    choose_file,
    sha256_of,
    smoke_passed,
    validate_wheel,
)
from farm.registries import GitlabRegistry, IndexLocation, PypiserverRegistry
from farm.simpleindex import RemoteFile, _from_html, _from_json
from farm.wheelfile import with_build_number
from tests.conftest import demo_ledger_entry
from tests.registries.wheels import EM_AARCH64, EM_X86_64, elf, make_wheel

PYPISERVER = PypiserverRegistry(kind="pypiserver", url="http://127.0.0.1:8080")
LOCATION = IndexLocation(
    registry="r",
    upload_url="http://127.0.0.1:8080/",
    simple_url="http://127.0.0.1:8080/simple/",
    read_url="http://127.0.0.1:8080/simple/",
    kind="pypiserver",
)


def _wheel(directory: Path) -> Path:
    return make_wheel(directory, "farm-demo", "0.1.0", tag="cp311-cp311-linux_aarch64")


def test_validation_normalises_the_name_and_hashes_the_file(tmp_path: Path) -> None:
    local = validate_wheel(_wheel(tmp_path), PYPISERVER)
    assert local.project == "farm-demo"
    assert local.version == "0.1.0"
    assert len(local.sha256) == 64


def test_a_wheel_over_the_profiles_size_limit_is_refused_before_upload(tmp_path: Path) -> None:
    small = PYPISERVER.model_copy(update={"max_file_size": 10})
    with pytest.raises(UsageError, match="over the registry's limit"):
        validate_wheel(_wheel(tmp_path), small)


def test_a_bad_file_name_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "farm_demo-latest-py3-none-any.whl"
    bad.write_bytes(b"")
    with pytest.raises(UsageError, match="not a valid wheel file name"):
        validate_wheel(bad, PYPISERVER)
    with pytest.raises(WheelRejected, match="unreadable: no such file"):
        validate_wheel(tmp_path / "missing-1.0-py3-none-any.whl", PYPISERVER)


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.23.2", True),
        ("v1.23.2", True),
        ("1.24.0rc1", True),
        ("1!2.0.post3.dev4", True),
        ("1.23.2+jp6.cu126", True),
        ("1.23.2+", False),
        ("latest", False),
    ],
)
def test_gitlabs_version_rule(version: str, ok: bool) -> None:
    assert bool(GITLAB_PYPI_VERSION.match(version)) is ok
    assert GitlabRegistry(kind="gitlab", url="https://g", project="1").max_file_size == 5 * 10**9


def test_backoff_is_bounded_and_doubles() -> None:
    assert RetryPolicy(attempts=4, first_delay_s=1).delays() == [1, 2, 4]
    assert RetryPolicy(attempts=7, first_delay_s=4, max_delay_s=16).delays() == [
        4,
        8,
        16,
        16,
        16,
        16,
    ]
    assert RetryPolicy(attempts=1).delays() == []


def test_smoke_record_must_name_this_wheel_and_pass(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    assert not smoke_passed(wheel)
    record = tmp_path / "smoke-bookworm-arm64.json"
    record.write_text(json.dumps({"wheel": wheel.name, "result": "failed"}))
    assert not smoke_passed(wheel)
    record.write_text(json.dumps({"wheel": "other.whl", "result": "passed"}))
    assert not smoke_passed(wheel)
    record.write_text(json.dumps({"wheel": wheel.name, "result": "passed"}))
    assert not smoke_passed(wheel)  # a record must carry the sha256 of what passed
    passed = {"wheel": wheel.name, "result": "passed", "wheel_sha256": sha256_of(wheel)}
    record.write_text(json.dumps(passed))
    assert smoke_passed(wheel)
    record.write_text(json.dumps({**passed, "wheel_sha256": "0" * 64}))
    assert not smoke_passed(wheel)  # other bytes under the tested name


def _request(tmp_path: Path) -> PublishRequest:
    return PublishRequest(
        wheel=_wheel(tmp_path),
        location=LOCATION,
        profile=PYPISERVER,
        credentials=Credentials(username="u", password="p4ssw0rd", source="TWINE_PASSWORD"),
    )


@pytest.mark.parametrize(
    ("output", "transient"),
    [
        ("ERROR    HTTPError: 503 Service Unavailable from http://127.0.0.1:8080/", True),
        ("ERROR    HTTPError: 502 Bad Gateway from http://h/", True),
        (
            "requests.exceptions.ConnectionError: ('Connection aborted.', RemoteDisconnected())",
            True,
        ),
        (
            "ConnectionError: Max retries exceeded ([Errno 111] Connection refused)",
            True,
        ),
        ("ERROR    HTTPError: 400 Bad Request from https://g/ File is too large", False),
    ],
)
def test_transient_failures_are_retried_and_others_are_not(
    tmp_path: Path, output: str, transient: bool
) -> None:
    request = _request(tmp_path)
    local = validate_wheel(request.wheel, PYPISERVER)
    if transient:
        assert _classify(output, request, local)
    else:
        with pytest.raises(RegistryError, match="File is too large"):
            _classify(output, request, local)


def test_rejected_credentials_name_their_source_not_their_value(tmp_path: Path) -> None:
    request = _request(tmp_path)
    local = validate_wheel(request.wheel, PYPISERVER)
    with pytest.raises(CredentialsRejected) as caught:
        _classify("ERROR    HTTPError: 403 Forbidden from http://127.0.0.1:8080/", request, local)
    assert "credentials from TWINE_PASSWORD" in caught.value.message
    assert "p4ssw0rd" not in caught.value.message


def test_simple_pages_in_html_and_json_give_file_hashes() -> None:
    digest = "ab" * 32
    html = (
        '<html><body><a href="../../packages/farm_demo-0.1.0-py3-none-any.whl'
        f'#sha256={digest}" data-requires-python="&gt;=3.8">farm_demo-0.1.0-py3-none-any.whl</a>'
        '<a href="/files/x-1.0.tar.gz">x-1.0.tar.gz</a></body></html>'
    )
    files = _from_html(html, "http://h/simple/farm-demo/")
    assert files[0].filename == "farm_demo-0.1.0-py3-none-any.whl"
    assert files[0].sha256 == digest
    assert files[0].url.startswith("http://h/packages/farm_demo-0.1.0")
    assert files[1].sha256 is None
    document = {"files": [{"filename": "a-1.whl", "url": "a-1.whl", "hashes": {"sha256": digest}}]}
    assert _from_json(document, "http://h/simple/a/")[0].url == "http://h/simple/a/a-1.whl"


# --- checked before anything is sent, and the one answer to a name clash ----------

JP6 = "cp310-cp310-manylinux_2_35_aarch64"


def _request_for(wheel: Path, **changes: Any) -> PublishRequest:
    fields: dict[str, Any] = {"require_smoke": False, **changes}
    return PublishRequest(
        wheel=wheel, location=LOCATION, profile=PYPISERVER, credentials=None, **fields
    )


def test_a_corrupt_wheel_is_refused_as_bad_input_naming_the_rule(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, tag=JP6, files={"farm_probe/_c.so": elf(EM_X86_64)})
    with pytest.raises(WheelRejected) as refused:
        check_wheel(_request_for(wheel))
    assert refused.value.exit_code == EXIT_USAGE
    assert refused.value.message == (
        f"{wheel.name}: architecture: farm_probe/_c.so is x86_64 code, the wheel is tagged aarch64"
    )


def test_with_a_target_the_inspect_verdict_must_be_compatible(
    tmp_path: Path, catalog: Catalog
) -> None:
    jetpack6 = catalog.targets["jetpack6"].model
    fits = make_wheel(tmp_path / "a", tag=JP6, files={"farm_probe/_c.so": elf(EM_AARCH64)})
    assert check_wheel(_request_for(fits, target=jetpack6)).path == fits
    py311 = make_wheel(tmp_path / "b", tag="cp311-cp311-manylinux_2_35_aarch64")
    with pytest.raises(WheelRejected, match="incompatible with jetpack6: wheel is for cp311"):
        check_wheel(_request_for(py311, target=jetpack6))
    gpu = ("CUDAExecutionProvider",)
    with pytest.raises(WheelRejected, match="no CUDAExecutionProvider library"):
        check_wheel(_request_for(fits, target=jetpack6, expect_providers=gpu))


def test_the_smoke_record_is_asked_for_last(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, payload=b"x")
    with pytest.raises(PublishRefused, match="no passing smoke record"):
        check_wheel(_request_for(wheel, require_smoke=True))
    record = {"wheel": wheel.name, "result": "passed", "wheel_sha256": sha256_of(wheel)}
    (tmp_path / "smoke-t.json").write_text(json.dumps(record))
    assert check_wheel(_request_for(wheel, require_smoke=True)).sha256 == sha256_of(wheel)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> dict[str, RemoteFile]:
    """The files the index lists for the project, by name (no network)."""
    files: dict[str, RemoteFile] = {}
    monkeypatch.setattr("farm.publish.project_files", lambda url, project, auth: dict(files))
    return files


def _listed(path: Path) -> RemoteFile:
    return RemoteFile(filename=path.name, url=f"http://h/{path.name}", sha256=sha256_of(path))


def _choose(
    wheel: Path, staging: Path, *, built_here: bool = True
) -> tuple[Path, RemoteFile | None]:
    local = check_wheel(_request_for(wheel))
    # A wheel this farm built has a ledger entry (the provenance check is check_wheel's).
    request = _request_for(wheel, ledger_entry=demo_ledger_entry() if built_here else None)
    chosen, present = choose_file(request, local, lambda: staging, lambda _: None, lambda _: None)
    return chosen.path, present


def test_a_clash_of_a_wheel_this_farm_did_not_build_is_refused_not_renumbered(
    tmp_path: Path, index: dict[str, RemoteFile]
) -> None:
    earlier = make_wheel(tmp_path / "earlier", payload=b"an earlier build")
    index[earlier.name] = _listed(earlier)
    wheel = make_wheel(tmp_path / "w", payload=b"someone else's")
    with pytest.raises(WheelRejected, match="only a wheel this farm built") as refused:
        _choose(wheel, tmp_path / "staging", built_here=False)
    assert refused.value.exit_code == EXIT_USAGE
    assert not (tmp_path / "staging").exists()
    # The same bytes as the index's are fine: nothing new is published.
    assert _choose(earlier, tmp_path / "staging", built_here=False)[1] == index[earlier.name]


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
