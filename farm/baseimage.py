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

from farm.cudastack import (
    DEFAULT_MIRRORS,
    Mirrors,
    assemble,
    assemble_runtime,
    place_cached,
    toolkit_tarball,
)
from farm.digest import sha256_file
from farm.engine import BuildRequest, Engine, image_exists
from farm.errors import FarmError, host_faults
from farm.models import BaseImage as ImageModel
from farm.models import Bootstrap, Target
from farm.process import Finished, stream
from farm.runner import EngineRunner

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
    if bootstrap.components != ("main",):
        argv.append("--components=" + ",".join(bootstrap.components))
    if bootstrap.include:
        argv.append("--include=" + ",".join(bootstrap.include))
    argv += [bootstrap.suite, str(tarball)]
    if bootstrap.mirror:
        argv.append(bootstrap.mirror)
    return argv


@dataclass(frozen=True, kw_only=True)
class Layer:
    """A tarball an image is made of, and how it is made when the cache lacks it."""

    tarball: Path
    make: Callable[[Path, Callable[[str], None]], None]
    plan: tuple[list[str], ...] = ()  # the commands it runs, for dry runs


@dataclass(frozen=True, kw_only=True)
class ImageSource:
    """An image a job needs, with the platform it is for and how to make it locally."""

    name: str  # names the cached tarballs
    platform: str
    reference: str
    layers: tuple[Layer, ...] = ()  # empty: a registry image, pulled by BuildKit


def target_image(target: Target, cache: Path, mirrors: Mirrors = DEFAULT_MIRRORS) -> ImageSource:
    return _image(target.name, target.platform, target.base_image, (cache, mirrors), target)


def builder_image(
    target: Target, cache: Path, mirrors: Mirrors = DEFAULT_MIRRORS
) -> ImageSource | None:
    """The cross strategy's build-platform image, when the target has a cross toolchain."""
    if target.cross is None:
        return None
    name = f"{target.name}-cross-builder"
    image = target.cross.builder_image
    return _image(name, target.cross.build_platform, image, (cache, mirrors), None)


def stack_image(
    target: Target, cache: Path, mirrors: Mirrors = DEFAULT_MIRRORS
) -> ImageSource | None:
    """The assembled CUDA toolkit of a target whose CUDA stack is registry packages."""
    stack = target.cuda.stack if target.cuda is not None else None
    if stack is None or target.cross is None:
        return None

    def make(tarball: Path, say: Callable[[str], None]) -> None:
        assemble(stack, cache, say, mirrors)

    return ImageSource(
        name=f"cuda-{stack.name}",
        platform=target.cross.build_platform,
        reference=target.cuda_stack_image or "",
        layers=(Layer(tarball=toolkit_tarball(stack, cache), make=make),),
    )


def _image(
    name: str,
    platform: str,
    image: ImageModel,
    downloads: tuple[Path, Mirrors],
    target: Target | None,
) -> ImageSource:
    cache, mirrors = downloads
    bootstrap = image.bootstrap
    if bootstrap is None:
        return ImageSource(name=name, platform=platform, reference=image.pinned)
    # Named by content: targets with the same bootstrap (the two stand-ins) share one tarball.
    rootfs = (
        cache / "rootfs" / f"{bootstrap.suite}-{bootstrap.architecture}-{image.bootstrap_key}.tar"
    )

    def make_rootfs(tarball: Path, say: Callable[[str], None]) -> None:
        _bootstrap(bootstrap, tarball, say)

    layers = [Layer(tarball=rootfs, make=make_rootfs, plan=(mmdebstrap_argv(bootstrap, rootfs),))]
    if image.runtime_packages and target is not None:
        packages, triplet = image.runtime_packages, _triplet(target)

        def make_runtime(tarball: Path, say: Callable[[str], None]) -> None:
            assemble_runtime(packages, triplet, tarball, cache, say, mirrors)

        runtime = cache / "rootfs" / f"{name}-runtime-{image.image_key}.tar"
        layers.append(Layer(tarball=runtime, make=make_runtime))
    return ImageSource(name=name, platform=platform, reference=image.pinned, layers=tuple(layers))


def _triplet(target: Target) -> str:
    return target.cross.triplet if target.cross is not None else f"{target.arch}-linux-gnu"


def images_for(
    target: Target, strategy: str, cache: Path, mirrors: Mirrors = DEFAULT_MIRRORS
) -> list[ImageSource]:
    sources = [target_image(target, cache, mirrors)]
    if strategy == "cross":
        sources += [
            image
            for image in (
                builder_image(target, cache, mirrors),
                stack_image(target, cache, mirrors),
            )
            if image
        ]
    return sources


def load_request(source: ImageSource, context: Path) -> BuildRequest:
    return BuildRequest(
        dockerfile=context / "Dockerfile",
        context=context,
        platform=source.platform,
        tag=source.reference,
        use_registry_cache=False,
    )


def planned_commands(
    sources: list[ImageSource], engine: Engine
) -> list[tuple[list[str], dict[str, str]]]:
    """What :func:`ensure_image` would run when nothing is cached, with each one's env."""
    commands: list[tuple[list[str], dict[str, str]]] = []
    for source in sources:
        if not source.layers or image_exists(engine, source.reference):
            continue
        for layer in source.layers:
            commands += [(argv, {}) for argv in layer.plan]
        context = source.layers[0].tarball.parent / "load-context"
        commands.append((engine.build_argv(load_request(source, context)), engine.env))
    return commands


def ensure_base_image(
    target: Target,
    engine: Engine,
    cache: Path,
    on_line: Callable[[str], None],
    mirrors: Mirrors = DEFAULT_MIRRORS,
) -> BaseImage:
    return ensure_image(target_image(target, cache, mirrors), engine, on_line)


def ensure_image(source: ImageSource, engine: Engine, on_line: Callable[[str], None]) -> BaseImage:
    started = time.monotonic()
    reference = source.reference
    if not source.layers or image_exists(engine, reference):
        return BaseImage(reference=reference, tarball=None, action="reused", duration_s=0.0)
    action = "loaded"
    with host_faults(f"preparing base image {reference}", source.layers[0].tarball.parent):
        for layer in source.layers:
            if not _verified(layer.tarball, on_line):
                layer.tarball.parent.mkdir(parents=True, exist_ok=True)
                layer.make(layer.tarball, on_line)
                _seal(layer.tarball)
                action = "bootstrapped"
        _load(source, engine, on_line)
    return BaseImage(
        reference=reference,
        tarball=source.layers[0].tarball,
        action=action,
        duration_s=time.monotonic() - started,
    )


def _seal_path(tarball: Path) -> Path:
    return tarball.with_name(f"{tarball.name}.sha256")


def _seal(tarball: Path) -> None:
    """Note the sha256 of a cached layer as made, so a later use can tell it is unchanged."""
    _seal_path(tarball).write_text(sha256_file(tarball) + "\n", encoding="utf-8")


def _verified(tarball: Path, on_line: Callable[[str], None]) -> bool:
    """Whether a cached layer is there with the bytes it was made with. A layer without its
    seal, or whose bytes changed (a disk fault, a hand edit, tampering), is deleted and said
    so: it is made again."""
    if not tarball.is_file():
        return False
    seal = _seal_path(tarball)
    expected = seal.read_text(encoding="utf-8").strip() if seal.is_file() else None
    found = sha256_file(tarball)
    if found == expected:
        return True
    on_line(
        f"cached {tarball} has sha256 {found}, not the {expected} it was made with: making it again"
        if expected
        else f"cached {tarball} has no record of its sha256: making it again"
    )
    tarball.unlink()
    seal.unlink(missing_ok=True)
    return False


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


def _load(source: ImageSource, engine: Engine, on_line: Callable[[str], None]) -> None:
    first = source.layers[0].tarball
    with tempfile.TemporaryDirectory(prefix="farm-image-", dir=first.parent) as scratch:
        context = Path(scratch)
        lines = ["FROM scratch"]
        for index, layer in enumerate(source.layers):
            name = f"layer{index}.tar"
            place_cached(layer.tarball, context / name)
            lines.append(f"ADD {name} /")
        lines.append('CMD ["/bin/sh"]')
        (context / "Dockerfile").write_text("\n".join(lines) + "\n", encoding="utf-8")
        log = first.with_name(f"{first.name}.load.log")
        with EngineRunner(engine, "base-image", on_line, log_path=log) as runner:
            runner.build(
                load_request(source, context),
                failed=lambda result: FarmError(
                    f"loading {source.reference} failed: {result.failing_line()}; log: {log}"
                ),
            )
