"""Typed shapes of the catalog: targets and package recipes.

Every model is frozen and forbids unknown fields, so a typo in a YAML file is
an error naming the field rather than a silently ignored setting. Cross-file
rules (a recipe naming a target that does not exist) live in
:mod:`farm.catalog`; rules about which versions fit which target live in
:mod:`farm.compat`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, ClassVar, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

# --- scalar shapes ---------------------------------------------------------

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
DottedVersion = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)*$")]
PythonVersion = Annotated[str, StringConstraints(pattern=r"^3\.\d{1,2}$")]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/\S*$")]
# CMAKE_CUDA_ARCHITECTURES entries: "87", "87-real" (SASS only), "87-virtual" (PTX only).
CudaArch = Annotated[str, StringConstraints(pattern=r"^\d{2,3}[a-z]?(-real|-virtual)?$")]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _pep440(value: str) -> str:
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError(f"{value!r} is not a PEP 440 version") from None
    return value


def _specifier(value: str) -> str:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValueError(f"{value!r} is not a PEP 440 version specifier") from None
    return value


PackageVersion = Annotated[str, AfterValidator(_pep440)]
Specifier = Annotated[str, AfterValidator(_specifier)]

# Docker platform → the machine name used in wheel tags (PEP 600).
WHEEL_ARCH = {"linux/arm64": "aarch64", "linux/amd64": "x86_64"}
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_([a-z0-9_]+)$")


class FieldRuleError(ValueError):
    """A model-level rule broken by one field; lets errors name that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _MultiLine:
    """Marks a text field that may span lines (a script, a patch, a file's contents)."""

    def __repr__(self) -> str:
        return "MultiLine"


MULTILINE = _MultiLine()
# A script, a patch or a file's contents: line breaks and tabs allowed, other control
# characters not. Every other string is one line without control characters.
Text = Annotated[str, MULTILINE]


# One word: an image reference, a compiler, a package name. No blanks, so it cannot become
# two arguments or a second instruction wherever it is written.
def _word(value: str) -> str:
    if not value or any(character.isspace() for character in value):
        raise ValueError(f"must be one word, without blanks or line breaks: {value[:60]!r}")
    return value


Word = Annotated[str, AfterValidator(_word)]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _refuse_control(value: object, multiline: bool, where: str = "") -> None:
    """Walk a field's value: strings, and the strings in its lists and mappings (keys are
    always one line). Nested models check their own fields. ``where`` is the path inside
    the field (``3``, ``key``), so that errors name the very item."""
    if isinstance(value, str):
        found = (_CONTROL_IN_TEXT if multiline else _CONTROL).search(value)
        if found:
            what = "" if multiline else " (one line only)"
            message = (
                f"control character U+{ord(found[0]):04X} at offset {found.start()}{what}, "
                f"after {value[: found.start()][-40:]!r}"
            )
            raise FieldRuleError(where, message) if where else ValueError(message)
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            _refuse_control(item, multiline, f"{where}.[{index}]".lstrip("."))
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control(key, False, where)
            _refuse_control(item, multiline, f"{where}.{key}".lstrip("."))


class FrozenModel(BaseModel):
    """Every catalog model: unknown fields refused, immutable, and no string field that
    could carry a line break or another control character into a Dockerfile, a shell
    script or a command line, unless its type is :data:`Text`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: object, info: ValidationInfo) -> object:
        field = cls.model_fields.get(info.field_name or "")
        multiline = field is not None and MULTILINE in field.metadata
        _refuse_control(value, multiline)
        return value


# --- targets ---------------------------------------------------------------


class OperatingSystem(FrozenModel):
    distro: Literal["ubuntu", "debian"]
    release: str
    codename: Name
    glibc: DottedVersion


def _relative_path(value: str) -> str:
    parts = value.split("/")
    if not value or value.startswith("/") or ".." in parts or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a relative path without '..' or spaces")
    return value


# A path inside a package archive or below a toolkit's home.
RelativePath = Annotated[str, AfterValidator(_relative_path)]


class StackPackage(FrozenModel):
    """One registry package of a CUDA stack, pinned by version, file and sha256.

    ``place`` maps a directory inside the package (a wheel's ``nvidia/cu13/lib/``, a
    Debian package's ``usr/bin/``) to a directory below the toolkit's home; ``{target}``
    in a destination stands for the stack's ``target_dir`` (the aarch64 tree). Files
    outside every mapped directory are not taken.
    """

    registry: Literal["debian", "pypi"]
    # Debian package names may hold "+" (libcu++-dev); PyPI's are lower case here.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9+._-]*$", max_length=128)
    version: str = Field(min_length=1)
    file: RelativePath  # a wheel's file name, or a Debian package's pool path
    sha256: Sha256
    place: dict[RelativePath, RelativePath] = Field(min_length=1)

    @property
    def file_name(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    @model_validator(mode="after")
    def _file_matches(self) -> StackPackage:
        name = self.file_name
        suffix = ".whl" if self.registry == "pypi" else ".deb"
        if not name.endswith(suffix):
            raise FieldRuleError("file", f"a {self.registry} package file ends in {suffix}")
        expected = self.name.replace("-", "_") if self.registry == "pypi" else self.name
        if not name.startswith(f"{expected}_" if self.registry == "debian" else f"{expected}-"):
            raise FieldRuleError("file", f"{name!r} is not a file of package {self.name!r}")
        return self


# Bumped whenever farm/cudastack.py lays a stack out differently, so cached toolkits of the
# old layout are not reused. 2: version.json at the toolkit's top.
STACK_LAYOUT = 2


class StackPatch(FrozenModel):
    """A unified diff applied (``patch -p1``) in one directory of the assembled toolkit."""

    directory: RelativePath  # below the toolkit home; "{target}" as in ``place``
    why: str = Field(min_length=1)
    diff: Text = Field(min_length=1)


class CudaStack(FrozenModel):
    """A CUDA stack assembled from registry packages instead of taken from an image.

    The assembled toolkit has NVIDIA's layout: build-machine tools in ``bin/`` and
    ``nvvm/``, the target's headers and libraries in ``target_dir``. ``release`` is
    what nvcc and the target's CUDA runtime headers must both report.
    """

    name: Name
    release: DottedVersion
    target_dir: RelativePath = "targets/sbsa-linux"
    packages: tuple[StackPackage, ...] = Field(min_length=1)
    # Directories (below the home) nvcc searches before the target's headers: fixes for the
    # target's C library that the toolkit's front end cannot parse.
    include_first: tuple[RelativePath, ...] = ()
    patches: tuple[StackPatch, ...] = ()

    @property
    def key(self) -> str:
        """Content key of the assembled toolkit: the stack's data and farm's layout of it."""
        shaping = {"stack": self.model_dump(mode="json"), "layout": STACK_LAYOUT}
        canonical = json.dumps(shaping, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Where an assembled CUDA stack (CudaStack) is mounted in the cross builder.
STACK_HOME = "/opt/farm/cuda"


class CudaToolkit(FrozenModel):
    version: DottedVersion
    home: AbsolutePath
    architectures: tuple[CudaArch, ...] = Field(min_length=1)
    # None: the image provides CUDA (NVIDIA's images in production).
    stack: CudaStack | None = None

    @model_validator(mode="after")
    def _stack_release(self) -> CudaToolkit:
        if self.stack is not None and self.stack.release != self.version:
            raise FieldRuleError(
                "stack.release", f"{self.stack.release} is not the target's CUDA {self.version}"
            )
        return self


class SystemLibrary(FrozenModel):
    """cuDNN or TensorRT as the target image installs it."""

    version: DottedVersion
    home: AbsolutePath


class Bootstrap(FrozenModel):
    """How a locally built base image's root filesystem is made."""

    tool: Literal["mmdebstrap"]
    suite: Name
    variant: Literal["extract", "custom", "essential", "apt", "minbase", "buildd", "important"]
    architecture: Literal["arm64", "amd64"]
    include: tuple[Word, ...] = ()
    components: tuple[Name, ...] = ("main",)
    mirror: str | None = None


class ToolsPython(FrozenModel):
    """An interpreter in the target image for the farm's own tools, when the target's is too old."""

    python: str = Field(pattern=r"^python3(\.\d{1,2})?$")
    apt: tuple[Word, ...] = ()


# auditwheel 6.4, the first that reads the architecture from the wheel, needs Python >= 3.9
# (its Requires-Python); the repair stage runs it inside the target image.
TOOLS_MIN_PYTHON = Version("3.9")


class BaseImage(FrozenModel):
    reference: Word = Field(min_length=1)
    digest: Digest | None = None
    bootstrap: Bootstrap | None = None
    # Registry packages whose shared libraries a bootstrapped image provides in
    # /usr/lib/<triplet> (a stand-in's CUDA runtime and cuDNN, as JetPack's image does).
    runtime_packages: tuple[StackPackage, ...] = ()

    @property
    def bootstrap_key(self) -> str | None:
        """Content hash of the bootstrap recipe: the tag, and the rootfs cache key."""
        if self.bootstrap is None:
            return None
        canonical = json.dumps(self.bootstrap.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def image_key(self) -> str | None:
        """The tag of a bootstrapped image: its root filesystem plus any runtime packages."""
        if self.bootstrap_key is None or not self.runtime_packages:
            return self.bootstrap_key
        runtime = [package.sha256 for package in self.runtime_packages]
        canonical = json.dumps([self.bootstrap_key, runtime])
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @model_validator(mode="after")
    def _runtime_needs_bootstrap(self) -> BaseImage:
        if self.runtime_packages and self.bootstrap is None:
            raise FieldRuleError(
                "runtime_packages", "only a bootstrapped image can be given runtime packages"
            )
        return self

    @property
    def pinned(self) -> str:
        """The reference as a Dockerfile ``FROM`` should use it.

        A registry image is pinned by digest when one is given; a bootstrapped
        image is tagged with the hash of its bootstrap recipe, so changing the
        package list gives a new image and a new build key.
        """
        if self.image_key is not None:
            return f"{self.reference}:{self.image_key}"
        return f"{self.reference}@{self.digest}" if self.digest else self.reference


Strategy = Literal["emulated", "cross"]


class BuilderPython(FrozenModel):
    """CPython of the target's version for a builder image that has another one: uv, its
    wheel pinned by sha256, installs python-build-standalone's build of ``version`` and
    checks that archive against the sha256 uv ships with."""

    version: str = Field(pattern=r"^3\.\d{1,2}\.\d{1,3}$")
    uv: PackageVersion
    uv_sha256: Sha256  # of uv's manylinux x86_64 wheel

    @property
    def minor(self) -> str:
        return self.version.rsplit(".", 1)[0]


class CrossToolchain(FrozenModel):
    """The cross strategy: compilers run natively on the build platform and target this one.

    ``builder_image`` is an image of the build platform (linux/amd64) holding the
    cross compilers and the same Python version as the target; the target's own
    image is copied in as the sysroot (libc, headers, Python's sysconfig).
    """

    build_platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    builder_image: BaseImage
    triplet: Name  # GNU triplet of the target, e.g. aarch64-linux-gnu
    cc: Word = Field(min_length=1)
    cxx: Word = Field(min_length=1)
    # apt packages the builder image lacks (cross compilers, cuda-cross-<arch>); a
    # bootstrapped builder lists them in its bootstrap instead.
    builder_packages: tuple[Word, ...] = ()
    # A CUDA toolkit on the build platform whose nvcc emits code for the target
    # (NVIDIA's cuda-cross-aarch64 packages put the target libraries in targets/<arch>).
    cuda_home: AbsolutePath | None = None
    # The target's Python for the build machine, where the builder image lacks it (crossenv
    # and onnxruntime's setup.py run the target's Python version on the build machine).
    builder_python: BuilderPython | None = None


class Target(FrozenModel):
    """A machine the wheels are built for; chosen by the user, never detected."""

    name: Name
    aliases: tuple[Name, ...] = ()
    description: str
    platform: Literal["linux/arm64", "linux/amd64"]
    jetpack: DottedVersion | None = None
    l4t: DottedVersion | None = None
    os: OperatingSystem
    manylinux_tag: str
    python: tuple[PythonVersion, ...] = Field(min_length=1)
    cuda: CudaToolkit | None = None
    cudnn: SystemLibrary | None = None
    tensorrt: SystemLibrary | None = None
    base_image: BaseImage
    provided_libs: tuple[Word, ...] = ()
    tools: ToolsPython | None = None
    cross: CrossToolchain | None = None
    # A stand-in: a target this machine can fetch every part of, sharing the CUDA stack of
    # the named production target but not its OS, glibc or Python.
    stands_in_for: Name | None = None

    @property
    def arch(self) -> str:
        return WHEEL_ARCH[self.platform]

    @property
    def default_python(self) -> str:
        return self.python[0]

    @property
    def cross_cuda_home(self) -> str | None:
        """Where the cross builder finds nvcc: the assembled stack, or the builder image's."""
        if self.cuda is not None and self.cuda.stack is not None:
            return STACK_HOME
        return self.cross.cuda_home if self.cross is not None else None

    @property
    def cuda_stack_image(self) -> str | None:
        """The local image of an assembled CUDA stack, tagged by the stack's content."""
        stack = self.cuda.stack if self.cuda is not None else None
        return f"farm.local/cuda-{stack.name}:{stack.key}" if stack is not None else None

    @property
    def cuda_target_dir(self) -> str:
        """The toolkit's tree of target headers and libraries, below its home."""
        if self.cuda is not None and self.cuda.stack is not None:
            return self.cuda.stack.target_dir
        return f"targets/{self.arch}-linux"

    def component_version(self, component: str) -> str | None:
        """Version of ``python``'s default, ``cuda``, ``cudnn`` or ``tensorrt``; None if absent."""
        if component == "python":
            return self.default_python
        part = getattr(self, component)
        return part.version if part is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        _check_manylinux_tag(self)
        _check_cross_cuda(self)
        if (self.cudnn or self.tensorrt) and self.cuda is None:
            raise FieldRuleError("cuda", "cudnn and tensorrt need cuda on the same target")
        if self.jetpack and not self.l4t:
            raise FieldRuleError("l4t", "a JetPack target must name its L4T release")
        stack = self.cuda.stack if self.cuda is not None else None
        if stack is not None and self.cross is not None and self.cross.cuda_home is not None:
            raise FieldRuleError(
                "cross.cuda_home",
                f"the assembled CUDA stack is mounted at {STACK_HOME}; leave cuda_home out",
            )
        builder_python = self.cross.builder_python if self.cross is not None else None
        if builder_python is not None and builder_python.minor not in self.python:
            raise FieldRuleError(
                "cross.builder_python.version",
                f"{builder_python.version} is not one of the target's pythons "
                f"({', '.join(self.python)})",
            )
        if self.name in self.aliases:
            raise FieldRuleError("aliases", f"alias {self.name!r} repeats the target's name")
        if len(set(self.python)) != len(self.python):
            raise FieldRuleError("python", "a version is listed twice")
        oldest = min(self.python, key=Version)
        if self.tools is None and Version(oldest) < TOOLS_MIN_PYTHON:
            raise FieldRuleError(
                "tools",
                f"python {oldest} cannot run auditwheel (needs >= {TOOLS_MIN_PYTHON}): "
                "name tools.python and the apt packages that install it",
            )
        return self

    def tools_python(self, python: str) -> str:
        """The interpreter command that runs the farm's tools inside the target image."""
        return self.tools.python if self.tools is not None else f"python{python}"


def _check_cross_cuda(target: Target) -> None:
    """A cross section's CUDA (its toolkit path, NVIDIA's cross package, NVIDIA's devel image
    tag) must be the target's release: nvcc of another release links the wrong runtime."""
    cross, cuda = target.cross, target.cuda
    if cross is None or cuda is None:
        return
    found: list[tuple[str, str]] = []
    if cross.cuda_home and (match := re.search(r"cuda-(\d+\.\d+)$", cross.cuda_home)):
        found.append(("cross.cuda_home", match[1]))
    for index, package in enumerate(cross.builder_packages):
        if match := re.fullmatch(r"cuda-cross-[a-z0-9]+-(\d+)-(\d+)", package):
            found.append((f"cross.builder_packages[{index}]", f"{match[1]}.{match[2]}"))
    if match := re.search(r"/cuda:(\d+\.\d+)\.", cross.builder_image.reference):
        found.append(("cross.builder_image.reference", match[1]))
    for field, release in found:
        if release != cuda.version:
            raise FieldRuleError(field, f"CUDA {release} is not the target's CUDA {cuda.version}")


def _check_manylinux_tag(target: Target) -> None:
    # PEP 600: manylinux_x_y_arch promises glibc >= x.y on arch. A tag above the
    # target's glibc would let pip install wheels the target cannot load.
    match = _MANYLINUX.match(target.manylinux_tag)
    if not match:
        raise FieldRuleError(
            "manylinux_tag", f"{target.manylinux_tag!r} is not manylinux_X_Y_ARCH (PEP 600)"
        )
    major, minor, arch = int(match[1]), int(match[2]), match[3]
    if arch != target.arch:
        raise FieldRuleError(
            "manylinux_tag",
            f"{target.manylinux_tag!r} is for {arch}, "
            f"but platform {target.platform} builds {target.arch}",
        )
    if (major, minor) > Version(target.os.glibc).release[:2]:
        raise FieldRuleError(
            "manylinux_tag",
            f"{target.manylinux_tag!r} promises glibc {major}.{minor}, above the target's "
            f"glibc {target.os.glibc} (PEP 600)",
        )


# --- recipes ---------------------------------------------------------------


class GitSource(FrozenModel):
    kind: Literal["git"]
    url: str = Field(pattern=r"^(https://|ssh://|git@|file://)\S+$")
    ref: str = Field(default="v{version}", pattern=r"^\S+$")
    submodules: bool = True

    def ref_for(self, version: str) -> str:
        return self.ref.replace("{version}", version)


class PathSource(FrozenModel):
    """Source tree kept in this repository, relative to the recipe file."""

    kind: Literal["path"]
    path: str = Field(min_length=1)

    def ref_for(self, version: str) -> str:
        return self.path


class SdistSource(FrozenModel):
    """A source distribution on the package index (PyPI, or the index pip is configured for)."""

    kind: Literal["sdist"]
    project: Name

    def ref_for(self, version: str) -> str:
        return f"{self.project}=={version}"


class PatchArchive(FrozenModel):
    """An archive of patches (a Debian source package's debian.tar.xz), pinned by sha256,
    and the patches in it that apply, in order."""

    url: str = Field(pattern=r"^(https?|file)://\S+$")
    sha256: Sha256
    apply: tuple[RelativePath, ...] = Field(min_length=1)


class ArchiveSource(FrozenModel):
    """A source archive fetched by URL and pinned by sha256 for each version it serves.

    Debian's ``orig`` tarballs are such archives. Patches from ``patch_archives``
    apply first, then the recipe's own ``patches`` (paths relative to the recipe
    file), each with ``patch -p1`` in the unpacked tree. Everything is fetched and
    checked by farm before the build, which then needs no network for the source.
    """

    kind: Literal["archive"]
    url: str = Field(pattern=r"^(https?|file)://\S+$")  # "{version}" is replaced
    sha256: dict[PackageVersion, Sha256] = Field(min_length=1)
    strip_components: int = Field(default=1, ge=0)
    patch_archives: tuple[PatchArchive, ...] = ()
    patches: tuple[RelativePath, ...] = ()

    def ref_for(self, version: str) -> str:
        return self.url.replace("{version}", version)


Source = Annotated[
    GitSource | PathSource | SdistSource | ArchiveSource, Field(discriminator="kind")
]
Component = Literal["python", "cuda", "cudnn", "tensorrt"]


class Requirements(FrozenModel):
    python: Specifier | None = None
    cuda: Specifier | None = None
    cudnn: Specifier | None = None
    tensorrt: Specifier | None = None

    def items(self) -> list[tuple[Component, str]]:
        pairs: list[tuple[Component, str | None]] = [
            ("python", self.python),
            ("cuda", self.cuda),
            ("cudnn", self.cudnn),
            ("tensorrt", self.tensorrt),
        ]
        return [(name, spec) for name, spec in pairs if spec is not None]


class CompatibilityRule(FrozenModel):
    """For the package versions in ``versions``, the target must meet ``requires``."""

    versions: Specifier
    requires: Requirements
    because: str = Field(min_length=1)


class MeasuredBuild(FrozenModel):
    """A real build's compile figures (its ninja log), from which plans estimate others."""

    objects: int = Field(gt=0)
    # Sums of the compile steps' times (end minus start in ninja's log): all of them, and
    # those of CUDA sources, which scale with the number of SM architectures.
    compile_s: float = Field(gt=0)
    cuda_compile_s: float = Field(default=0, ge=0)
    cuda_architectures: int = Field(default=1, ge=1)
    jobs: int = Field(default=1, ge=1)  # parallel compile jobs of that run
    where: str = Field(min_length=1)  # what was built, on what machine

    @model_validator(mode="after")
    def _cuda_within(self) -> MeasuredBuild:
        if self.cuda_compile_s > self.compile_s:
            raise FieldRuleError("cuda_compile_s", "is more than compile_s, of which it is part")
        return self


class _FarmBuilder(FrozenModel):
    """A build the farm renders itself: one Dockerfile per strategy, CUDA targets welcome."""

    strategies: ClassVar[tuple[Strategy, ...]] = ("emulated", "cross")
    builds_cuda: ClassVar[bool] = True
    dockerfile: str
    cross_dockerfile: str
    # A file beside the recipe pinning every Debian package that installing the build's target
    # packages fetches (farm/debs.py, written by `farm lock`); without one, they come from the
    # live archive.
    package_lock: RelativePath | None = None
    # A real build's figures: plans estimate their duration from them.
    measured: MeasuredBuild | None = None

    def target_packages(self) -> tuple[str, ...]:
        """Target packages the wheel's libraries come from (repair needs them to graft)."""
        return ()

    def dockerfile_for(self, strategy: Strategy) -> str:
        return self.cross_dockerfile if strategy == "cross" else self.dockerfile


class OnnxruntimeBuild(_FarmBuilder):
    """onnxruntime's own build driver, ``tools/ci_build/build.py``."""

    kind: Literal["onnxruntime"]
    dockerfile: str = "onnxruntime.Dockerfile.j2"
    cross_dockerfile: str = "onnxruntime-cross.Dockerfile.j2"
    config: Literal["Release", "RelWithDebInfo", "Debug", "MinSizeRel"] = "Release"
    cmake: Specifier
    python_requirements: tuple[str, ...] = ()
    system_packages: tuple[Word, ...] = ()
    cmake_defines: dict[str, str] = Field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    # Cross only: packages of the target installed into the sysroot (headers and libraries
    # the build links against), and a protoc of the build machine. Without one, the protoc
    # release archive onnxruntime's cmake/deps.txt names is downloaded.
    sysroot_packages: tuple[Word, ...] = ()
    protoc: AbsolutePath | None = None
    # Pinned packages unpacked below /opt/farm/deps for the build (header-only libraries
    # FetchContent would otherwise download), and small files written there (CMake shims).
    deps: tuple[StackPackage, ...] = ()
    dep_files: Annotated[dict[RelativePath, str], MULTILINE] = Field(default_factory=dict)

    def target_packages(self) -> tuple[str, ...]:
        """Target packages the wheel's libraries come from (repair needs them to graft)."""
        return self.sysroot_packages

    # Memory one parallel CUDA compile job may take, and each extra nvcc thread.
    job_memory_gib: float = Field(default=6.0, gt=0)
    nvcc_thread_memory_gib: float = Field(default=2.0, gt=0)
    max_nvcc_threads: int = Field(default=4, ge=1)
    reserve_memory_gib: float = Field(default=2.0, ge=0)


class Pep517Build(_FarmBuilder):
    """The standard PEP 517 path: ``pip wheel`` of the source tree inside the target."""

    kind: Literal["pep517"]
    dockerfile: str = "pep517.Dockerfile.j2"
    cross_dockerfile: str = "pep517-cross.Dockerfile.j2"
    system_packages: tuple[Word, ...] = ()
    pip_args: tuple[str, ...] = ()
    # Cross strategy only: build requirements with native code that must run on the build
    # machine (cffi, ...). They go into crossenv's build-python and pip builds without
    # isolation; without them, pip's isolated build environment serves pure requirements.
    cross_build_requires: tuple[str, ...] = ()

    def target_packages(self) -> tuple[str, ...]:
        """Target packages the wheel's libraries come from (repair needs them to graft)."""
        return self.system_packages


class CibuildwheelBuild(FrozenModel):
    """cibuildwheel itself, so the package's own ``[tool.cibuildwheel]`` settings and tests apply.

    It runs on the build machine and builds inside a container of an image the farm derives
    from the target's (``dockerfile``), laid out as cibuildwheel expects of a manylinux image.
    Emulated only: cibuildwheel has no cross strategy, and it builds without CUDA.
    """

    strategies: ClassVar[tuple[Strategy, ...]] = ("emulated",)
    builds_cuda: ClassVar[bool] = False
    kind: Literal["cibuildwheel"]
    dockerfile: str = "cibuildwheel.Dockerfile.j2"
    # apt packages installed into the derived image (what a package's before-all would
    # install with yum or dnf in a manylinux image).
    system_packages: tuple[Word, ...] = ()
    # Appended to the package's own environment option (CIBW_ENVIRONMENT, inherit=append).
    environment: dict[str, str] = Field(default_factory=dict)
    # Replaces the package's before-all, which often calls yum, dnf or apk: "" turns it off.
    before_all: Text | None = None

    def dockerfile_for(self, strategy: Strategy) -> str:
        return self.dockerfile  # the image is the target's; cross is refused when planning

    def target_packages(self) -> tuple[str, ...]:
        """Target packages the wheel's libraries come from (repair needs them to graft)."""
        return self.system_packages


Build = Annotated[OnnxruntimeBuild | Pep517Build | CibuildwheelBuild, Field(discriminator="kind")]


# The part of a target each GPU execution provider links against.
PROVIDER_NEEDS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}


class OnnxruntimeSmoke(FrozenModel):
    kind: Literal["onnxruntime"]
    # Execution providers the wheel must have compiled in, per target name; "*" for any other.
    expect_providers: dict[str, tuple[str, ...]] = Field(min_length=1)

    def providers_for(self, target: Target) -> tuple[str, ...]:
        """The providers listed for the target, less those whose library it lacks.

        A provider is built only where the target has what it links (onnxruntime's
        build.py takes --use_tensorrt only with a TensorRT home), so a target
        without TensorRT is never asked for the TensorRT provider.
        """
        listed = self.expect_providers.get(target.name, self.expect_providers.get("*", ()))
        return tuple(
            provider
            for provider in listed
            if PROVIDER_NEEDS.get(provider) is None
            or getattr(target, PROVIDER_NEEDS[provider]) is not None
        )

    def expectations(self, target: Target) -> dict[str, object]:
        return {"kind": self.kind, "expect_providers": list(self.providers_for(target))}


class PythonSmoke(FrozenModel):
    """Import a module and run a short script that raises on a wrong result."""

    kind: Literal["python"]
    module: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    script: Text = Field(min_length=1)

    def expectations(self, target: Target) -> dict[str, object]:
        return {"kind": self.kind, "module": self.module}


Smoke = Annotated[OnnxruntimeSmoke | PythonSmoke, Field(discriminator="kind")]


def _emulated_everywhere() -> dict[str, Strategy]:
    return {"*": "emulated"}


class BuildOverride(FrozenModel):
    """Additions to a recipe's build for one target: merged over the recipe's own."""

    cmake_defines: dict[str, str] = Field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    system_packages: tuple[Word, ...] = ()
    sysroot_packages: tuple[Word, ...] = ()
    protoc: AbsolutePath | None = None
    deps: tuple[StackPackage, ...] = ()
    dep_files: Annotated[dict[RelativePath, str], MULTILINE] = Field(default_factory=dict)
    package_lock: RelativePath | None = None


class TargetOverride(FrozenModel):
    """What differs when a recipe is built for one target: its source and build additions."""

    source: Source | None = None
    build: BuildOverride | None = None


class Upstream(FrozenModel):
    """Where `farm nightly` learns of new releases, when not from the source's git tags."""

    pypi: Name | None = None  # a PyPI project whose release list follows upstream's


class Recipe(FrozenModel):
    """How one Python distribution is fetched, built and tested."""

    name: Name
    description: str
    distribution: Name | None = None  # the wheel's distribution name, when not ``name``
    source: Source
    versions: tuple[PackageVersion, ...] = Field(min_length=1)
    needs: tuple[Literal["cuda", "cudnn", "tensorrt"], ...] = ()
    defaults: dict[str, PackageVersion] = Field(default_factory=dict)
    rules: tuple[CompatibilityRule, ...] = ()
    build: Build
    smoke: Smoke
    upstream: Upstream | None = None
    nightly_targets: tuple[Name, ...] = ()  # what `farm nightly` builds this recipe for
    # How it is built per target ("*": any other): emulated or cross.
    strategy: dict[str, Strategy] = Field(default_factory=_emulated_everywhere)
    # Per target: another source (a stand-in builds from an archive), build additions.
    overrides: dict[Name, TargetOverride] = Field(default_factory=dict)
    # Per version: the source's release time (seconds since 1970, UTC) that builds use for
    # every timestamp they write (SOURCE_DATE_EPOCH); DEFAULT_SOURCE_DATE_EPOCH otherwise.
    source_date_epoch: dict[PackageVersion, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if len({Version(v) for v in self.versions}) != len(self.versions):
            raise FieldRuleError("versions", "a version is listed twice")
        for target, version in self.defaults.items():
            if version not in self.versions:
                raise FieldRuleError(f"defaults.{target}", f"{version} is not in versions")
        for version in self.source_date_epoch:
            if version not in self.versions:
                raise FieldRuleError(f"source_date_epoch.{version}", "not in versions")
        for target, override in self.overrides.items():
            source = override.source
            for version in source.sha256 if isinstance(source, ArchiveSource) else ():
                if version not in self.versions:
                    raise FieldRuleError(
                        f"overrides.{target}.source.sha256",
                        f"{version} is pinned but not in versions",
                    )
            if override.build is not None and self.build.kind != "onnxruntime":
                raise FieldRuleError(
                    f"overrides.{target}.build", "build overrides are for onnxruntime builds"
                )
        _check_builder_fits(self)
        return self

    def for_target(self, target: str) -> Recipe:
        """This recipe as built for ``target``: its override's source and build merged in.

        An archive source serves only the versions it pins, so the versions (and a
        default) are narrowed to those.
        """
        override = self.overrides.get(target)
        if override is None:
            return self
        update: dict[str, object] = {"overrides": {}}
        if override.source is not None:
            update["source"] = override.source
            if isinstance(override.source, ArchiveSource):
                pinned = override.source.sha256
                update["versions"] = tuple(v for v in self.versions if v in pinned)
                update["defaults"] = {k: v for k, v in self.defaults.items() if v in pinned}
        if override.build is not None:
            update["build"] = _merge_build(self.build, override.build)
        return self.model_copy(update=update)

    def strategy_for(self, target: Target) -> Strategy:
        """The recipe's entry for ``target`` by name; else, for a package that compiles CUDA,
        cross wherever the target has a cross toolchain (a CUDA compile under QEMU takes
        hours: only ``--strategy emulated`` asks for one); else the ``"*"`` entry."""
        named = self.strategy.get(target.name)
        if named is not None:
            return named
        cross_ready = target.cross is not None and "cross" in self.build.strategies
        if cross_ready and self.compiles_cuda_for(target):
            return "cross"
        return self.strategy.get("*") or "emulated"

    def compiles_cuda_for(self, target: Target) -> bool:
        return "cuda" in self.needs and target.cuda is not None

    def sorted_versions(self) -> list[str]:
        """Known versions, newest first."""
        return sorted(self.versions, key=Version, reverse=True)


def _check_builder_fits(recipe: Recipe) -> None:
    """What the recipe's builder cannot do: a strategy, CUDA, a source it cannot take."""
    build = recipe.build
    for target, strategy in recipe.strategy.items():
        if strategy not in build.strategies:
            raise FieldRuleError(
                f"strategy.{target}", f"a {build.kind} build runs {' or '.join(build.strategies)}"
            )
    if "cuda" in recipe.needs and not build.builds_cuda:
        raise FieldRuleError("needs", f"a {build.kind} build cannot build against CUDA")
    if isinstance(build, CibuildwheelBuild):
        sources = {"source": recipe.source} | {
            f"overrides.{name}.source": o.source for name, o in recipe.overrides.items() if o.source
        }
        for field, source in sources.items():
            _check_sdist_archive(field, source)


def _check_sdist_archive(
    field: str, source: GitSource | PathSource | SdistSource | ArchiveSource
) -> None:
    """cibuildwheel builds an sdist file as it is (``cibuildwheel NAME.tar.gz``): a pinned
    archive source of one, unpatched."""
    if not isinstance(source, ArchiveSource) or not source.url.endswith(".tar.gz"):
        raise FieldRuleError(
            field,
            "a cibuildwheel build takes an sdist: an archive source whose url ends in .tar.gz",
        )
    if source.patches or source.patch_archives:
        raise FieldRuleError(f"{field}.patches", "cibuildwheel builds the sdist unpatched")


def _merge_build(build: Build, extra: BuildOverride) -> Build:
    """The recipe's build with a target's additions: defines merged, lists extended."""
    if not isinstance(build, OnnxruntimeBuild):  # pragma: no cover - the validator refuses it
        raise TypeError("build overrides are for onnxruntime builds")
    return build.model_copy(
        update={
            "cmake_defines": {**build.cmake_defines, **extra.cmake_defines},
            "extra_args": (*build.extra_args, *extra.extra_args),
            "system_packages": (*build.system_packages, *extra.system_packages),
            "sysroot_packages": (*build.sysroot_packages, *extra.sysroot_packages),
            "protoc": extra.protoc or build.protoc,
            "deps": (*build.deps, *extra.deps),
            "dep_files": {**build.dep_files, **extra.dep_files},
            "package_lock": extra.package_lock or build.package_lock,
        }
    )
