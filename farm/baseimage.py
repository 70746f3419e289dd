"""Locally bootstrapped base images: a root filesystem made with mmdebstrap, loaded as an image.

The tarball is cached under the farm cache directory, keyed by the bootstrap
recipe's hash; the image is tagged with the same key. A present image is
reused, a present tarball is loaded without bootstrapping again. The image is
built through BuildKit (``FROM scratch`` + ``ADD``) for the target platform, so
it carries the right architecture label (``docker import`` would label it with
the host's and BuildKit would then try to pull it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from farm.engine import BuildRequest, Engine, image_exists
from farm.errors import EnvironmentProblem, FarmError
from farm.models import BaseImage as ImageModel
from farm.models import Bootstrap, Target
from farm.process import Finished, stream

Runner = Callable[[list[str], dict[str, str]], Finished]


@dataclass(frozen=True, kw_only=True)
class BaseImage:
    reference: str
    tarball: Path | None
    action: str  # "reused", "loaded" or "bootstrapped"
    duration_s: float


def mmdebstrap_argv(bootstrap: Bootstrap, tarball: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        f"--variant={bootstrap.variant}",
        f"--architectures={bootstrap.architecture}",
        # Explicit: mmdebstrap otherwise picks the format from the file name's
        # extension, and anything it does not know becomes a directory.
        "--format=tar",
    ]
    if bootstrap.include:
        argv.append("--include=" + ",".join(bootstrap.include))
    argv += [bootstrap.suite, str(tarball)]
    if bootstrap.mirror:
        argv.append(bootstrap.mirror)
    return argv


@dataclass(frozen=True, kw_only=True)
class ImageSource:
    """An image a job needs, with the platform it is for and how to make it locally."""

    name: str  # names the cached root filesystem
    platform: str
    image: ImageModel


def target_image(target: Target) -> ImageSource:
    return ImageSource(name=target.name, platform=target.platform, image=target.base_image)


def builder_image(target: Target) -> ImageSource | None:
    """The cross strategy's build-platform image, when the target has a cross toolchain."""
    if target.cross is None:
        return None
    return ImageSource(
        name=f"{target.name}-cross-builder",
        platform=target.cross.build_platform,
        image=target.cross.builder_image,
    )


def images_for(target: Target, strategy: str) -> list[ImageSource]:
    builder = builder_image(target) if strategy == "cross" else None
    return [target_image(target), *([builder] if builder else [])]


def tarball_path(source: ImageSource, cache: Path) -> Path:
    return cache / "rootfs" / f"{source.name}-{source.image.bootstrap_key}.tar"


def load_request(source: ImageSource, context: Path) -> BuildRequest:
    return BuildRequest(
        dockerfile=context / "Dockerfile",
        context=context,
        platform=source.platform,
        tag=source.image.pinned,
        use_registry_cache=False,
    )


def planned_commands(
    sources: list[ImageSource], engine: Engine, cache: Path
) -> list[tuple[list[str], dict[str, str]]]:
    """What :func:`ensure_image` would run when nothing is cached, with each one's env."""
    commands = []
    for source in sources:
        bootstrap = source.image.bootstrap
        if bootstrap is None or image_exists(engine, source.image.pinned):
            continue
        context = cache / "rootfs" / "load-context"
        commands += [
            (mmdebstrap_argv(bootstrap, tarball_path(source, cache)), {}),
            (engine.build_argv(load_request(source, context)), engine.env),
        ]
    return commands


def ensure_base_image(
    target: Target, engine: Engine, cache: Path, on_line: Callable[[str], None]
) -> BaseImage:
    return ensure_image(target_image(target), engine, cache, on_line)


def ensure_image(
    source: ImageSource, engine: Engine, cache: Path, on_line: Callable[[str], None]
) -> BaseImage:
    started = time.monotonic()
    reference = source.image.pinned
    bootstrap = source.image.bootstrap
    if bootstrap is None or image_exists(engine, reference):
        return BaseImage(reference=reference, tarball=None, action="reused", duration_s=0.0)
    tarball = tarball_path(source, cache)
    action = "loaded"
    if not tarball.is_file():
        _bootstrap(bootstrap, tarball, on_line)
        action = "bootstrapped"
    _load(source, engine, tarball, on_line)
    return BaseImage(
        reference=reference, tarball=tarball, action=action, duration_s=time.monotonic() - started
    )


def _bootstrap(bootstrap: Bootstrap, tarball: Path, on_line: Callable[[str], None]) -> None:
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f".{tarball.stem}.{os.getpid()}.partial.tar")
    try:
        result = stream(mmdebstrap_argv(bootstrap, partial), on_line=on_line)
        if result.returncode != 0:
            raise FarmError(
                f"mmdebstrap failed ({result.returncode}): {result.failing_line()}",
                hint="`farm doctor` checks QEMU/binfmt; mmdebstrap needs arch-test",
            )
        partial.replace(tarball)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _load(
    source: ImageSource, engine: Engine, tarball: Path, on_line: Callable[[str], None]
) -> None:
    with tempfile.TemporaryDirectory(prefix="farm-rootfs-", dir=tarball.parent) as scratch:
        context = Path(scratch)
        try:
            os.link(tarball, context / "rootfs.tar")  # same directory tree: no copy
        except OSError:
            raise EnvironmentProblem(f"cannot hard-link {tarball} into {context}") from None
        (context / "Dockerfile").write_text(
            'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/sh"]\n', encoding="utf-8"
        )
        result = stream(
            engine.build_argv(load_request(source, context)), on_line=on_line, env=engine.env
        )
    if result.returncode != 0:
        raise FarmError(f"loading {source.image.pinned} failed: {result.failing_line()}")
