"""Host checks: can this machine build aarch64 wheels, and if not, what exactly to do.

Each check returns a :class:`Check` with a status (ok, warn, fail), what was
found, and for anything not ok the command or step that fixes it. The build
stage runs the same checks it needs before calling BuildKit.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from farm.cudastack import toolkit_tarball
from farm.engine import (
    BUILDER_ENV,
    CACHE_ENV,
    SETUP_HINT,
    BuildRequest,
    Engine,
    EngineChoice,
    daemon_version,
    detect_engine,
)
from farm.errors import EnvironmentProblem, FarmError
from farm.models import Target
from farm.paths import writable_directory
from farm.process import capture
from farm.resources import BuilderResources
from farm.runner import EngineRunner, orphaned_containers, remove_orphans

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# binfmt_misc handler names as QEMU's qemu-binfmt-conf.sh registers them, per Docker platform.
BINFMT_NAME = {"linux/arm64": "qemu-aarch64", "linux/amd64": "qemu-x86_64"}
HOST_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}
# QEMU 7.2 (Debian 12) segfaults on `import onnxruntime` for aarch64; 10.0 runs it.
QEMU_BROKEN_BELOW = Version("8.0")
QEMU_TESTED = Version("10.0")
DISK_FAIL_GIB = 5.0
DISK_WARN_GIB = 40.0  # an onnxruntime CUDA build tree with ccache takes about this much

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def host_platform() -> str:
    machine = capture(["uname", "-m"]).output.strip()
    return HOST_PLATFORM.get(machine, f"linux/{machine}")


def check_engine(choice: EngineChoice) -> tuple[Check, Engine | None]:
    try:
        engine = detect_engine(choice)
    except EnvironmentProblem as exc:
        return Check(name="engine", status="fail", detail=exc.message, fix=SETUP_HINT), None
    return Check(name="engine", status="ok", detail=engine.describe()), engine


def check_buildx(engine: Engine) -> Check:
    """What the buildx builder's driver can do; what it cannot is said, not left to fail."""
    builder = engine.builder or "the default builder"
    if engine.driver == "docker":
        detail = (
            f"{builder}, docker driver: the daemon's own BuildKit; no registry cache export "
            "(--cache-to), so builds reuse only this daemon's cache"
        )
        if engine.cache_ref:
            return Check(
                name="buildx",
                status="warn",
                detail=f"{detail}; {CACHE_ENV}={engine.cache_ref} is not used",
                fix="a docker-container builder exports cache: `docker buildx create --driver "
                "docker-container --use` (it needs the moby/buildkit image from a registry, or "
                f"`docker load` of it), then {BUILDER_ENV}=NAME",
            )
        return Check(name="buildx", status="ok", detail=detail)
    driver = engine.driver or "unknown"
    cache = f"; registry cache {engine.cache_ref}" if engine.exports_registry_cache else ""
    return Check(name="buildx", status="ok", detail=f"{builder}, {driver} driver{cache}")


def check_orphans(engine: Engine) -> Check:
    """Containers of a farm process that was killed before it could remove them."""
    orphans = orphaned_containers(engine)
    if not orphans:
        return Check(name="leftovers", status="ok", detail="no containers of a stopped farm")
    pids = ", ".join(sorted({str(pid) for _, pid in orphans}))
    return Check(
        name="leftovers",
        status="warn",
        detail=f"{len(orphans)} container(s) left by farm process(es) {pids}, which no longer run",
        fix="the next farm build, smoke or repair removes them; now: docker rm --force "
        + " ".join(container for container, _ in orphans),
    )


def check_daemon(engine: Engine) -> Check:
    try:
        version = daemon_version(engine)
    except EnvironmentProblem as exc:
        return Check(
            name="daemon",
            status="fail",
            detail=exc.message,
            fix="start it: `dockerd >/var/log/dockerd.log 2>&1 &` or "
            "`systemctl start docker` (scripts/host-setup.sh does this)",
        )
    return Check(name="daemon", status="ok", detail=f"docker engine {version}")


BUILDKIT_FIX = (
    "use a docker client with BuildKit: Debian's docker.io (DOCKER_BUILDKIT=1) "
    "or the buildx plugin; FARM_DOCKER=/usr/bin/docker selects a client"
)


def check_buildkit(engine: Engine) -> Check:
    """A real BuildKit build of a one-file scratch image, exported with --output type=local."""
    with tempfile.TemporaryDirectory(prefix="farm-doctor-") as scratch:
        root = Path(scratch)
        (root / "probe.txt").write_text("farm\n")
        (root / "Dockerfile").write_text("FROM scratch\nCOPY probe.txt /probe.txt\n")
        request = BuildRequest(
            dockerfile=root / "Dockerfile",
            context=root,
            platform=host_platform(),
            output_dir=root / "out",
            use_registry_cache=False,
        )
        try:
            with EngineRunner(engine, "doctor", lambda line: None) as runner:
                runner.build(
                    request,
                    timeout=180,
                    failed=lambda result: FarmError(
                        f"BuildKit build failed: {result.failing_line()}", hint=BUILDKIT_FIX
                    ),
                )
        except FarmError as exc:
            return Check(name="buildkit", status="fail", detail=exc.message, fix=exc.hint)
        if not (root / "out" / "probe.txt").is_file():
            return Check(
                name="buildkit",
                status="fail",
                detail="BuildKit built the probe but exported nothing with --output type=local",
                fix=BUILDKIT_FIX,
            )
    return Check(
        name="buildkit",
        status="ok",
        detail="built and exported a scratch image with --output type=local",
    )


def check_binfmt(platform: str = "linux/arm64") -> Check:
    name = BINFMT_NAME.get(platform, "qemu-aarch64")
    if platform == host_platform():
        return Check(name="binfmt", status="ok", detail=f"{platform} is native; no emulation")
    if not (BINFMT_DIR / "status").exists():
        return Check(
            name="binfmt",
            status="fail",
            detail=f"binfmt_misc is not mounted at {BINFMT_DIR}",
            fix=f"mount -t binfmt_misc binfmt_misc {BINFMT_DIR}, then scripts/host-setup.sh",
        )
    entry = _binfmt_entry(name)
    if entry is None:
        return Check(
            name="binfmt",
            status="fail",
            detail=f"no {name} handler is registered, so {platform} programs cannot run",
            fix="scripts/host-setup.sh registers it (qemu-user-static from bookworm-backports)",
        )
    if not entry["enabled"]:
        return Check(
            name="binfmt",
            status="fail",
            detail=f"{name} is registered but disabled",
            fix=f"echo 1 > {BINFMT_DIR / name}",
        )
    if "F" not in str(entry["flags"]):
        return Check(
            name="binfmt",
            status="fail",
            detail=f"{name} lacks the F flag, so containers cannot find the interpreter",
            fix="scripts/host-setup.sh re-registers it with F",
        )
    return Check(
        name="binfmt",
        status="ok",
        detail=f"{name} -> {entry['interpreter']} (flags {entry['flags']})",
    )


def _binfmt_entry(name: str) -> dict[str, str | bool] | None:
    try:
        text = (BINFMT_DIR / name).read_text()
    except OSError:
        return None
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    return {
        "enabled": text.startswith("enabled"),
        "interpreter": fields.get("interpreter", ""),
        "flags": fields.get("flags:", fields.get("flags", "")).strip(),
    }


def check_qemu(platform: str = "linux/arm64") -> Check:
    if platform == host_platform():
        return Check(name="qemu", status="ok", detail="not needed on a native builder")
    entry = _binfmt_entry(BINFMT_NAME.get(platform, "qemu-aarch64"))
    interpreter = str(entry["interpreter"]) if entry else shutil.which("qemu-aarch64-static")
    if not interpreter:
        return Check(
            name="qemu",
            status="fail",
            detail="no QEMU user-mode interpreter found",
            fix="apt-get install -t bookworm-backports qemu-user-static",
        )
    version = qemu_version(interpreter)
    upgrade = (
        "apt-get install -t bookworm-backports qemu-user-static, then scripts/"
        "host-setup.sh to re-register it (an F-flag entry keeps the old binary)"
    )
    if version is None:
        return Check(
            name="qemu",
            status="fail",
            detail=f"{interpreter} does not report a version",
            fix=upgrade,
        )
    if version < QEMU_BROKEN_BELOW:
        return Check(
            name="qemu",
            status="fail",
            detail=f"QEMU {version} ({interpreter}) crashes running onnxruntime for aarch64",
            fix=upgrade,
        )
    if version < QEMU_TESTED:
        return Check(
            name="qemu",
            status="warn",
            detail=f"QEMU {version}: untested; {QEMU_TESTED} is known to work",
            fix=upgrade,
        )
    return Check(name="qemu", status="ok", detail=f"QEMU {version} ({interpreter})")


def qemu_version(interpreter: str) -> Version | None:
    try:
        output = capture([interpreter, "--version"]).output
    except EnvironmentProblem:
        return None
    match = re.search(r"version (\d+\.\d+(\.\d+)?)", output)
    try:
        return Version(match[1]) if match else None
    except InvalidVersion:
        return None


def check_disk(engine: Engine | None, extra: Path) -> Check:
    paths = [extra]
    if engine is not None:
        root = capture([engine.docker, "info", "--format", "{{.DockerRootDir}}"]).output.strip()
        if root.startswith("/") and Path(root).exists():
            paths.append(Path(root))
    free = {path: shutil.disk_usage(_existing(path)).free / 2**30 for path in paths}
    worst, gib = min(free.items(), key=lambda item: item[1])
    detail = ", ".join(f"{path}: {size:.0f} GiB free" for path, size in free.items())
    if gib < DISK_FAIL_GIB:
        return Check(
            name="disk",
            status="fail",
            detail=detail,
            fix=f"free space on {worst}: `docker builder prune` and `docker image prune`",
        )
    if gib < DISK_WARN_GIB:
        return Check(
            name="disk",
            status="warn",
            detail=detail + f" (an onnxruntime build needs about {DISK_WARN_GIB:.0f} GiB)",
            fix="`docker builder prune` frees cache",
        )
    return Check(name="disk", status="ok", detail=detail)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_memory(resources: BuilderResources) -> Check:
    return Check(
        name="memory",
        status="ok",
        detail=f"builder: {resources.cpus} CPUs, "
        f"{resources.memory_gib:.1f} GiB ({resources.source})",
    )


def check_mmdebstrap() -> Check:
    path = shutil.which("mmdebstrap")
    if path is None:
        return Check(
            name="mmdebstrap",
            status="warn",
            detail="mmdebstrap not found: targets "
            "with a bootstrapped base image (bookworm-arm64) cannot be built",
            fix="apt-get install mmdebstrap arch-test",
        )
    return Check(name="mmdebstrap", status="ok", detail=path)


def check_cuda_stacks(targets: list[Target], cache_dir: Path) -> list[Check]:
    """For each target whose CUDA is assembled from packages: is it cached, can it be made."""
    checks = []
    for target in targets:
        stack = target.cuda.stack if target.cuda is not None else None
        if stack is None:
            continue
        tarball = toolkit_tarball(stack, cache_dir)
        where = f"{stack.name} (CUDA {stack.release}, {len(stack.packages)} packages)"
        if tarball.is_file():
            size = tarball.stat().st_size / 2**30
            detail = f"{target.name}: {where} assembled, {size:.1f} GiB in {tarball}"
        else:
            detail = f"{target.name}: {where} not assembled yet; a cross build assembles it"
        if stack.patches and shutil.which("patch") is None:
            checks.append(
                Check(
                    name="cuda stack",
                    status="fail",
                    detail=f"{detail}; patch is not installed",
                    fix="apt-get install patch (scripts/host-setup.sh does)",
                )
            )
        else:
            checks.append(Check(name="cuda stack", status="ok", detail=detail))
    return checks


def run_checks(
    cache_dir: Path,
    *,
    engine_choice: EngineChoice,
    resources: BuilderResources,
    platform: str = "linux/arm64",
    targets: list[Target] | None = None,
) -> list[Check]:
    engine_check, engine = check_engine(engine_choice)
    checks = [engine_check]
    if engine is not None:
        daemon = check_daemon(engine)
        checks.append(daemon)
        if daemon.status == "ok":
            if engine.kind == "buildx":
                checks.append(check_buildx(engine))
            checks.append(check_buildkit(engine))
            checks.append(check_orphans(engine))
    later: list[Callable[[], Check]] = [
        lambda: check_binfmt(platform),
        lambda: check_qemu(platform),
        lambda: check_disk(engine, cache_dir),
        lambda: check_memory(resources),
        check_mmdebstrap,
    ]
    checks += [check() for check in later]
    return checks + check_cuda_stacks(targets or [], cache_dir)


def preflight(
    platform: str,
    choice: EngineChoice,
    cache_dir: Path,
    directories: Mapping[str, Path] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Engine:
    """Fail before BuildKit starts when the daemon or emulation cannot work, or a directory
    the command writes (``{what: path}``) is not a writable directory. Containers a killed
    farm left behind are removed first (``say`` tells which)."""
    for what, path in (directories or {}).items():
        writable_directory(path, what)
    engine = detect_engine(choice)
    daemon_version(engine)
    for check in (check_binfmt(platform), check_qemu(platform), check_disk(engine, cache_dir)):
        if check.status == "fail":
            raise EnvironmentProblem(check.detail, hint=check.fix)
    remove_orphans(engine, say)
    return engine
