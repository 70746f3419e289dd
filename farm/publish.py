"""The publish stage: a wheel into a private index, exactly once, or a clear refusal.

For each wheel, ``farm publish`` and ``farm build --publish`` alike:

1. check locally, before any network: the file itself (:mod:`farm.wheelcheck`:
   a sound zip, safe paths, RECORD matching every member, ELF code of the
   tag's architecture), a PEP 427 file name with a PEP 440 version (and, for
   GitLab, its own version rule), the profile's size limit, with a target
   ``farm inspect``'s verdict "compatible", and a passing smoke record next to
   the wheel unless the user overrides;
2. ask the index whether the file name is taken (:func:`choose_file`): the
   same sha256 is success with nothing to do; another sha256 means an earlier
   build holds the name, so a copy with the next PEP 427 build number is
   published instead (or found, when an earlier run published it), and no
   index ever holds two different files under one name;
3. upload with twine (credentials in its environment, never argv). twine
   repeats a POST answered 5xx up to five times at once, but never one cut by
   a reset or timeout, never waits, and never asks whether the last try
   landed; so failures still transient after twine (connection refused or
   reset, timeouts, 429, 5xx) are retried here with bounded exponential
   backoff, asking the index before each retry whether a file landed after all,
   and a "file exists" answer (400/409) is resolved by comparing hashes;
4. read the index back and compare the listed sha256 (or the downloaded
   file's) with the local one.

On devpi the target's index is created on first use (non-volatile, with the
profile's ``bases``), and a volatile index is refused.

A ``publish-<registry>.json`` record lands next to the wheel; a renumbered copy
is kept in ``renumbered/`` beside it only once it is published (candidates are
made in a temporary directory and removed).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from packaging.utils import parse_wheel_filename

from farm.console import without_escapes
from farm.credentials import Credentials
from farm.devpi import ensure_index
from farm.digest import sha256_file
from farm.errors import (
    CredentialsRejected,
    FileExists,
    PublishRefused,
    RegistryError,
    WheelRejected,
)
from farm.inspect import inspect_wheel
from farm.ledger import LedgerEntry
from farm.models import Target
from farm.network import ca_bundle
from farm.process import capture, command_line
from farm.provenance import provenance_matches
from farm.records import write_record
from farm.registries import DevpiRegistry, GitlabRegistry, IndexLocation, Profile
from farm.simpleindex import (
    RemoteFile,
    TransientFailure,
    download_sha256,
    normalise,
    project_files,
)
from farm.wheelcheck import verify_wheel
from farm.wheelfile import next_build_number, same_release, split_name, with_build_number

T = TypeVar("T")

# lib/gitlab/regex/packages.rb, pypi_version_regex (GitLab validates uploads with it):
# PEP 440's public and local versions, also accepting a leading "v".
GITLAB_PYPI_VERSION = re.compile(
    r"""\A(?:
    v?
    (?:([0-9]+)!)?
    ([0-9]+(?:\.[0-9]+)*)
    ([-_\.]?((a|b|c|rc|alpha|beta|pre|preview))[-_\.]?([0-9]+)?)?
    ((?:-([0-9]+))|(?:[-_\.]?(post|rev|r)[-_\.]?([0-9]+)?))?
    ([-_\.]?(dev)[-_\.]?([0-9]+)?)?
    (?:\+([a-z0-9]+(?:[-_\.][a-z0-9]+)*))?
    )\Z""",
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4
    first_delay_s: float = 1.0
    max_delay_s: float = 16.0

    def delays(self) -> list[float]:
        return [
            min(self.first_delay_s * 2**attempt, self.max_delay_s)
            for attempt in range(self.attempts - 1)
        ]


@dataclass(frozen=True, kw_only=True)
class LocalWheel:
    path: Path
    project: str  # PEP 503 normalised
    version: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class PublishRequest:
    wheel: Path
    location: IndexLocation
    profile: Profile
    credentials: Credentials | None
    require_smoke: bool = True
    retry: RetryPolicy = RetryPolicy()
    # With a target, `farm inspect`'s verdict for it must be "compatible".
    target: Target | None = None
    expect_providers: tuple[str, ...] = ()
    # Where a copy renumbered on a name clash is kept once it is published.
    renumbered_dir: Path | None = None
    # The ledger's entry for the build key the wheel's provenance names: the wheel must be
    # what it recorded (farm.provenance.provenance_matches). None: not built here.
    ledger_entry: LedgerEntry | None = None
    # Without one: the build key under which this state directory built the wheel's release
    # (farm.destinations.release_built_as). Such a wheel is refused, never renumbered.
    release_built_as: str | None = None

    @property
    def keep_dir(self) -> Path:
        return self.renumbered_dir or self.wheel.parent / "renumbered"


@dataclass(frozen=True, kw_only=True)
class PublishedWheel:
    wheel: str
    path: Path  # the file now in the index: the wheel itself or its renumbered copy
    renumbered_from: str | None  # the wheel's own name when the index got a renumbered copy
    sha256: str
    state: str  # "uploaded" or "present" (the index already held these bytes)
    url: str
    index: str
    attempts: int
    upload_s: float  # time inside twine, all attempts
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel,
            "path": str(self.path),
            "renumbered_from": self.renumbered_from,
            "sha256": self.sha256,
            "state": self.state,
            "url": self.url,
            "index": self.index,
            "attempts": self.attempts,
            "upload_s": round(self.upload_s, 2),
            "duration_s": round(self.duration_s, 2),
        }


def sha256_of(path: Path) -> str:
    return sha256_file(path)


def validate_wheel(path: Path, profile: Profile) -> LocalWheel:
    """The file itself (farm.wheelcheck), then the profile's rules; each failure names the
    wheel and the rule."""
    problems = verify_wheel(path)
    if problems:
        raise WheelRejected(path.name, problems[0].rule, problems[0].detail)
    name, version, _, _ = parse_wheel_filename(path.name)
    if isinstance(profile, GitlabRegistry) and not GITLAB_PYPI_VERSION.match(str(version)):
        raise WheelRejected(path.name, "version", f"{version} breaks GitLab's PyPI version rule")
    size = path.stat().st_size
    if profile.max_file_size is not None and size > profile.max_file_size:
        raise WheelRejected(
            path.name,
            "size",
            f"{size / 1e6:.0f} MB is over the registry's limit of "
            f"{profile.max_file_size / 1e6:.0f} MB (max_file_size in the profile)",
        )
    return LocalWheel(
        path=path,
        project=normalise(str(name)),
        version=str(version),
        size=size,
        sha256=sha256_of(path),
    )


def check_wheel(request: PublishRequest) -> LocalWheel:
    """Every check that needs no network; when one fails, nothing was sent anywhere.

    A wheel unfit to publish raises :class:`WheelRejected` (exit 2); one without a
    passing smoke record raises :class:`PublishRefused`.
    """
    local = validate_wheel(request.wheel, request.profile)
    target = request.target
    if target is not None:
        report = inspect_wheel(request.wheel, target, request.expect_providers)
        if not report.compatible:
            raise WheelRejected(
                request.wheel.name, f"incompatible with {target.name}", report.problems[0]
            )
    if request.ledger_entry is not None:
        mismatches = provenance_matches(request.wheel, request.ledger_entry)
        if mismatches:
            raise WheelRejected(request.wheel.name, "provenance", mismatches[0])
    elif request.release_built_as is not None:
        raise WheelRejected(
            request.wheel.name,
            "provenance",
            f"this farm built this release as build key {request.release_built_as[:12]}, but "
            "the wheel's provenance is missing or names a key it did not build: not one of its "
            "builds, so it is neither published nor renumbered",
        )
    if request.require_smoke and not smoke_passed(request.wheel):
        raise PublishRefused(
            f"{request.wheel.name}: no passing smoke record next to it",
            hint="run `farm smoke WHEEL --target T` first, or pass --no-smoke-required",
        )
    return local


def smoke_passed(wheel: Path) -> bool:
    """Whether a smoke record next to the wheel says this very file passed: its name and its
    sha256 (a wheel changed after its smoke test, or swapped in under the same name, has
    no passing record)."""
    for record in wheel.parent.glob("smoke-*.json"):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (
            data.get("wheel") == wheel.name
            and data.get("result") == "passed"
            and data.get("wheel_sha256") == sha256_file(wheel)
        ):
            return True
    return False


def publish_wheel(
    request: PublishRequest,
    *,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
    checked: LocalWheel | None = None,
) -> PublishedWheel:
    """Publish one wheel (``checked``: what :func:`check_wheel` returned for it)."""
    started = time.monotonic()
    original = checked or check_wheel(request)
    if isinstance(request.profile, DevpiRegistry):
        _ensure_devpi_index(request, request.profile, on_line, sleep)
    with contextlib.ExitStack() as cleanup:
        staging = _staging(cleanup, request.keep_dir.parent)
        local, present = choose_file(request, original, staging, on_line, sleep)
        present, attempts, upload_s = _upload_unless_present(
            request, local, present, on_line, sleep
        )
        path = _keep(local.path, original.path, request.keep_dir)
    published = PublishedWheel(
        wheel=local.path.name,
        path=path,
        renumbered_from=original.path.name if path != original.path else None,
        sha256=local.sha256,
        state="uploaded" if attempts else "present",
        url=present.url,
        index=request.location.read_url,
        attempts=attempts,
        upload_s=upload_s,
        duration_s=time.monotonic() - started,
    )
    write_record(
        original.path.parent / f"publish-{request.location.registry}.json",
        "publish",
        "passed",
        published.duration_s,
        {"registry": request.location.registry, **published.to_json()},
    )
    return published


def _ensure_devpi_index(
    request: PublishRequest,
    profile: DevpiRegistry,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> None:
    location = request.location
    retrying(
        lambda: ensure_index(location, profile, request.credentials, on_line),
        request.retry,
        f"registry {location.registry}",
        on_line,
        sleep,
    )


def choose_file(
    request: PublishRequest,
    local: LocalWheel,
    staging: Callable[[], Path],
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> tuple[LocalWheel, RemoteFile | None]:
    """What goes into the index, for `farm publish` and the pipeline alike, and what the index
    already holds of it: the wheel itself, when the index lacks its file name or holds these
    very bytes under it; else, since one name never stands for two files, its copy with the
    next PEP 427 build number, or the number an earlier run already published it under. Only
    a wheel this farm built (one with a ledger entry) is renumbered; another is refused."""
    files = _listing(request, local.project, on_line, sleep)
    clash = files.get(local.path.name)
    if clash is None or _remote_sha256(clash, request) == local.sha256:
        return local, clash
    if request.ledger_entry is None:
        raise WheelRejected(
            local.path.name,
            "clash",
            f"{request.location.registry} holds another file of this name, and only a wheel "
            "this farm built (a ledger entry for its provenance's build key) is published as a "
            "new build",
        )
    releases = [name for name in files if same_release(local.path.name, name)]
    directory = staging()
    for name in releases:
        number = split_name(name)[2]
        candidate = with_build_number(local.path, number, directory) if number else None
        if candidate and _remote_sha256(files[name], request) == sha256_of(candidate):
            on_line(f"{local.path.name} was published as build {number} before: {name}")
            return validate_wheel(candidate, request.profile), files[name]
    number = next_build_number(local.path.name, releases)
    on_line(
        f"{local.path.name} is in {request.location.registry} with other content (an earlier "
        f"build): publishing it as build {number}"
    )
    return validate_wheel(with_build_number(local.path, number, directory), request.profile), None


def _staging(cleanup: contextlib.ExitStack, beside: Path) -> Callable[[], Path]:
    """A directory for renumbered candidates, made on first use and removed with ``cleanup``:
    a candidate never lies where results are read, and only a published one is kept."""

    def make() -> Path:
        beside.mkdir(parents=True, exist_ok=True)
        return Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix=".candidates-", dir=beside))
        )

    return make


def _keep(published: Path, original: Path, keep_dir: Path) -> Path:
    """Where the published file stays: the wheel itself, or its copy moved into keep_dir."""
    if published == original:
        return original
    keep_dir.mkdir(parents=True, exist_ok=True)
    kept = keep_dir / published.name
    published.replace(kept)
    return kept


def _upload_unless_present(
    request: PublishRequest,
    local: LocalWheel,
    present: RemoteFile | None,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> tuple[RemoteFile, int, float]:
    """The index's file for ``local`` after uploading it if need be; attempts and upload time."""
    if present is not None:
        on_line(f"{local.path.name} is already in {request.location.registry} (same sha256)")
        return present, 0, 0.0
    started = time.monotonic()
    attempts = _upload(request, local, on_line, sleep)
    upload_s = time.monotonic() - started
    found = _lookup(request, local, on_line, sleep)
    if found is None:
        raise RegistryError(
            f"{local.path.name}: uploaded, but {request.location.simple_url} does not list it"
        )
    return found, attempts, upload_s


def _remote_sha256(remote: RemoteFile, request: PublishRequest) -> str:
    return remote.sha256 or download_sha256(
        remote.url, request.credentials, index_url=request.location.simple_url
    )


def _listing(
    request: PublishRequest,
    project: str,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> dict[str, RemoteFile]:
    """The index's files of ``project``, asked with retries; rejected credentials named."""
    location, auth = request.location, request.credentials
    try:
        return retrying(
            lambda: project_files(location.simple_url, project, auth),
            request.retry,
            f"registry {location.registry}",
            on_line,
            sleep,
        )
    except CredentialsRejected as exc:
        source = auth.source if auth else "none found"
        raise CredentialsRejected(
            f"registry {location.registry} rejected the credentials (from {source}): {exc}",
            hint="check the user and password or token, and that it may read and upload",
        ) from None


def _lookup(
    request: PublishRequest,
    local: LocalWheel,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> RemoteFile | None:
    """The file in the index under this name: None, or the same bytes; other bytes (another
    uploader since :func:`choose_file` asked) refuse."""
    location = request.location
    files = _listing(request, local.project, on_line, sleep)
    remote = files.get(local.path.name)
    if remote is None:
        return None
    sha256 = _remote_sha256(remote, request)
    if sha256 != local.sha256:
        raise PublishRefused(
            f"{local.path.name} is already in {location.registry} with other content "
            f"(sha256 {sha256[:12]}…, this file {local.sha256[:12]}…)",
            hint="another upload took this file name while this one ran: run again",
        )
    return remote


def _upload(
    request: PublishRequest,
    local: LocalWheel,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> int:
    """twine upload with retries; returns the number of attempts it took."""
    delays = request.retry.delays()
    for attempt in range(1, request.retry.attempts + 1):
        try:
            failure = _twine_upload(request, local, on_line)
        except FileExists:
            # An earlier try (twine's own, or ours) may have stored it before failing.
            if _lookup(request, local, on_line, sleep) is not None:
                return attempt
            raise
        if failure is None:
            return attempt
        if attempt > len(delays):
            raise RegistryError(
                f"uploading {local.path.name} to {request.location.registry} failed "
                f"{attempt} times; last: {failure}",
                hint="the registry is down or overloaded; nothing was published, run again later",
            )
        on_line(f"attempt {attempt} failed ({failure}); retrying in {delays[attempt - 1]:.1f} s")
        sleep(delays[attempt - 1])
        # A timed-out or reset upload may still have landed: ask before sending it again.
        if _lookup(request, local, on_line, sleep) is not None:
            return attempt
    raise AssertionError("unreachable")  # pragma: no cover


def twine_argv(location: IndexLocation, wheel: Path) -> list[str]:
    """The upload command; credentials go in its environment (see credential_names)."""
    return [
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        # The registry's refusal reason (a 400's body) is shown only with --verbose.
        "--verbose",
        "--repository-url",
        location.upload_url,
        str(wheel),
    ]


def credential_names(credentials: Credentials | None) -> dict[str, str] | None:
    """What a dry run shows of the credentials twine gets: the variables, not their values."""
    if credentials is None:
        return None
    return dict.fromkeys(credentials.environment(), "...")


def _twine_upload(
    request: PublishRequest, local: LocalWheel, on_line: Callable[[str], None]
) -> str | None:
    """One twine run: None on success, a transient failure's reason, or raise."""
    argv = twine_argv(request.location, local.path)
    # NO_COLOR: plain text in farm's log and error lines, whatever FORCE_COLOR says.
    env = {"TWINE_NON_INTERACTIVE": "1", "NO_COLOR": "1"}
    if request.credentials is not None:
        env.update(request.credentials.environment())
    bundle = ca_bundle()
    if bundle is not None:
        env["TWINE_CERT"] = bundle
    on_line(f"+ {command_line(argv)}")
    result = capture(argv, env=env, timeout=3600)
    # twine colours its log whatever NO_COLOR says: escape codes never reach farm's output.
    output = without_escapes(result.output)
    for line in output.splitlines():
        if line.strip():
            on_line(line)
    if result.returncode == 0:
        return None
    return _classify(output, request, local)


def _classify(output: str, request: PublishRequest, local: LocalWheel) -> str:
    # twine reports "HTTPError: 403 Forbidden from URL"; requests "503 Server Error: ...".
    status_match = re.search(r"HTTPError: (\d{3})|\b(\d{3}) (?:Client|Server) Error", output)
    status = int(status_match[1] or status_match[2]) if status_match else None
    where = request.location.registry
    if status in (401, 403):
        source = request.credentials.source if request.credentials else "none found"
        raise CredentialsRejected(
            f"{where} rejected the credentials for uploading {local.path.name} "
            f"(HTTP {status}; credentials from {source})",
            hint="check the token's scope (write_package_registry on GitLab) and value",
        )
    if status is not None and status in {408, 425, 429} | set(range(500, 600)):
        return f"HTTP {status}"
    if status is None and re.search(
        r"Connection(Error| refused| reset| aborted)|timed out|RemoteDisconnected|"
        r"Max retries exceeded|BrokenPipe",
        output,
    ):
        return _last_error_line(output)
    detail = _server_reason(output) or _last_error_line(output)
    if status in (400, 409):
        # Duplicates come back as 400 (GitLab, pypiserver to twine) or 409 (devpi), and
        # twine shows the reason only with --verbose: the caller asks the index.
        raise FileExists(f"{where} refused {local.path.name} (HTTP {status}): {detail}")
    raise RegistryError(f"{where} refused {local.path.name}: {detail}")


def _server_reason(output: str) -> str | None:
    """What the registry said with a refusal (twine --verbose prints the response body after
    "Response from URL: STATUS"); a JSON body's "message", else its first line."""
    found = re.search(r"Response from \S+:\s*\n\s*\d{3}[^\n]*\n([^\n]+)", output)
    if found is None:
        return None
    body = re.sub(r"^\s*(INFO|WARNING|ERROR)\s+", "", found[1]).strip()
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    reason = str(message) if message else body
    return " ".join(reason.split())[:300] or None


def _last_error_line(output: str) -> str:
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error" in line]
    return (errors or lines or ["twine gave no output"])[-1]


def retrying(
    operation: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    on_line: Callable[[str], None],
    sleep: Callable[[float], None],
) -> T:
    delays = policy.delays()
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except TransientFailure as exc:
            if attempt > len(delays):
                raise RegistryError(
                    f"{what} unreachable after {attempt} attempts: {exc}",
                    hint="is the registry running and reachable from here? nothing was published",
                ) from None
            on_line(f"{what}: {exc}; retrying in {delays[attempt - 1]:.1f} s")
            sleep(delays[attempt - 1])
    raise AssertionError("unreachable")  # pragma: no cover
