"""Provenance in the wheel: a machine-readable record of what made it.

After auditwheel repaired a wheel, the runner stamps it: the record below is
written as ``<name>-<version>.dist-info/sboms/farm.provenance.json`` (beside
auditwheel's CycloneDX SBOM; PEP 770 reserves ``sboms/`` for such files), and
the whole wheel is rewritten in the farm's deterministic normal form
(:mod:`farm.wheelzip`) with every timestamp at SOURCE_DATE_EPOCH.

The record holds only what the build key stands for, so the same key always
gives the same record: the key itself, digests of the recipe and target parts
that shape the wheel, the source (kind, URL, ref, sha256 or tree digest), the
images built on (a bootstrapped image's tag is its bootstrap recipe's hash),
the toolchain (the compilers the build reported, the target's CUDA, cuDNN
and TensorRT), the farm version, the strategy and SOURCE_DATE_EPOCH. Never a
build time, host name, user or host path.

:func:`provenance_matches` checks a wheel against its ledger entry; the
ledger keeps the record and the wheel's content digest from the repair stage.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from farm import __version__
from farm.errors import UsageError
from farm.ledger import LedgerEntry
from farm.models import ArchiveSource, Target
from farm.plan import BuildJob, canonical_digest, recipe_shaping, target_shaping
from farm.repair import REQUIREMENTS
from farm.schemas import SCHEMA_VERSIONS
from farm.wheelfile import same_release, split_name
from farm.wheelzip import content_digest, date_time, dist_info, rewrite_wheel

PROVENANCE_SCHEMA_VERSION = SCHEMA_VERSIONS["provenance"]
PROVENANCE_FILE = "farm.provenance.json"


def provenance_member(names: list[str]) -> str:
    """Where a wheel with these entries keeps its provenance."""
    return f"{dist_info(names)}/sboms/{PROVENANCE_FILE}"


def provenance_record(job: BuildJob, toolchain: Mapping[str, str]) -> dict[str, Any]:
    """What made the job's wheel; ``toolchain``: the compilers' versions the build reported."""
    spec = job.spec
    return {
        "schema_version": PROVENANCE_SCHEMA_VERSION,
        "build_key": job.build_key,
        "package": spec.recipe.name,
        "distribution": spec.recipe.distribution or spec.recipe.name,
        "version": spec.version,
        "python": spec.python,
        "target": {
            "name": spec.target.name,
            "digest": canonical_digest(target_shaping(spec)),
            "platform": spec.target.platform,
            "manylinux_tag": spec.target.manylinux_tag,
        },
        "recipe": {"name": spec.recipe.name, "digest": canonical_digest(recipe_shaping(spec))},
        "source": _source(job),
        "images": _images(spec.target, job.strategy),
        "toolchain": _toolchain(spec.target, toolchain),
        "farm_version": __version__,
        "strategy": job.strategy,
        "dockerfile_sha256": hashlib.sha256(job.dockerfile.encode()).hexdigest(),
        "repair_tools": list(REQUIREMENTS),
        "source_date_epoch": spec.source_date_epoch,
    }


def _source(job: BuildJob) -> dict[str, Any]:
    spec = job.spec
    source = spec.recipe.source
    archive = isinstance(source, ArchiveSource)
    return {
        "kind": source.kind,
        "url": source.ref_for(spec.version) if archive else getattr(source, "url", None),
        "path": getattr(source, "path", None),  # as the recipe names it, relative to it
        "project": getattr(source, "project", None),
        "ref": spec.source_ref,
        "sha256": source.sha256.get(spec.version) if isinstance(source, ArchiveSource) else None,
        "patches": list(source.patches) if isinstance(source, ArchiveSource) else [],
        "digest": spec.source_digest,  # path: tree digest; archive: archive and patches
    }


def _images(target: Target, strategy: str) -> dict[str, Any]:
    # An assembled stack serves cross builds; emulated ones use the image's own toolkit.
    stack = target.cuda.stack if target.cuda is not None and strategy == "cross" else None
    builder = target.cross.builder_image if strategy == "cross" and target.cross else None
    return {
        "base": target.base_image.pinned,
        "base_bootstrap_key": target.base_image.bootstrap_key,
        "builder": builder.pinned if builder else None,
        "cuda_stack": {"name": stack.name, "release": stack.release, "key": stack.key}
        if stack is not None
        else None,
    }


def _toolchain(target: Target, compilers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "compilers": dict(sorted(compilers.items())),
        "cuda": target.cuda.version if target.cuda else None,
        "cuda_architectures": list(target.cuda.architectures) if target.cuda else [],
        "cudnn": target.cudnn.version if target.cudnn else None,
        "tensorrt": target.tensorrt.version if target.tensorrt else None,
    }


def provenance_bytes(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def stamp_wheel(wheel: Path, record: Mapping[str, Any], epoch: int) -> Path:
    """Put ``record`` into ``wheel`` and rewrite it in the normal form, in place."""
    with zipfile.ZipFile(wheel) as archive:
        member = provenance_member(archive.namelist())
    partial = wheel.with_name(f".{wheel.name}.stamping")
    rewrite_wheel(
        wheel, partial, replace={member: provenance_bytes(record)}, stamp=date_time(epoch)
    )
    return partial.replace(wheel)


def read_provenance(wheel: Path) -> dict[str, Any] | None:
    """The provenance a wheel carries; None when it has none; ValueError when unreadable."""
    with zipfile.ZipFile(wheel) as archive:
        member = provenance_member(archive.namelist())
        if member not in archive.namelist():
            return None
        record = json.loads(archive.read(member))
    if not isinstance(record, dict):
        raise ValueError(f"{member} is not a JSON object")
    return record


def provenance_lines(record: Mapping[str, Any]) -> list[str]:
    """The record for people: what made the wheel, one line per part."""
    source, images, toolchain = record["source"], record["images"], record["toolchain"]
    where = source.get("url") or source.get("path") or source.get("project")
    ref = source.get("ref") if source.get("ref") != where else None
    digest = source.get("sha256") or source.get("digest")
    tools = [f"{label}: {version}" for label, version in toolchain.get("compilers", {}).items()]
    tools += [
        f"{name} {toolchain[name]}" for name in ("cuda", "cudnn", "tensorrt") if toolchain[name]
    ]
    builder = f", builder {images['builder']}" if images.get("builder") else ""
    return [
        f"build key {record['build_key']} (farm {record['farm_version']}, {record['strategy']})",
        f"recipe {record['recipe']['name']} {record['recipe']['digest'][:12]}, "
        f"target {record['target']['name']} {record['target']['digest'][:12]}",
        " ".join(part for part in ("source", source["kind"], where, ref) if part)
        + (
            f", {'sha256' if source.get('sha256') else 'content digest'} {digest}" if digest else ""
        ),
        f"base image {images['base']}{builder}",
        f"toolchain {'; '.join(tools) or 'not recorded'}",
        f"SOURCE_DATE_EPOCH {record['source_date_epoch']}",
    ]


def provenance_matches(wheel: Path, entry: LedgerEntry) -> list[str]:
    """Why ``wheel`` is not the wheel ``entry`` recorded (or a renumbered copy of it), one
    line each; empty when it is. For publishing: a wheel whose provenance or files are not
    what the ledger holds for its build key must not reach an index."""
    try:
        found = read_provenance(wheel)
    except (OSError, zipfile.BadZipFile, ValueError, UsageError) as exc:
        return [f"{wheel.name}: its provenance cannot be read ({exc})"]
    if found is None:
        return [f"{wheel.name} carries no {PROVENANCE_FILE}"]
    return _identity_problems(wheel, found, entry) + _ledger_problems(wheel, found, entry)


def _identity_problems(wheel: Path, found: Mapping[str, Any], entry: LedgerEntry) -> list[str]:
    target = found.get("target")
    claimed = {
        "schema_version": found.get("schema_version"),
        "build_key": found.get("build_key"),
        "distribution": found.get("distribution"),
        "version": found.get("version"),
        "python": found.get("python"),
        "target": target.get("name") if isinstance(target, dict) else None,
    }
    expected = {
        "schema_version": PROVENANCE_SCHEMA_VERSION,
        "build_key": entry.build_key,
        "distribution": entry.distribution,
        "version": entry.version,
        "python": entry.python,
        "target": entry.target,
    }
    problems = [
        f"provenance {field} is {claimed[field]!r}, the ledger entry's is {value!r}"
        for field, value in expected.items()
        if claimed[field] != value
    ]
    name, version, _, _ = split_name(wheel.name)
    if (name, version) != (_normal(entry.distribution), entry.version):
        problems.append(f"{wheel.name} is not {entry.distribution} {entry.version}")
    return problems


def _normal(distribution: str) -> str:
    return str(canonicalize_name(distribution))


def _ledger_problems(wheel: Path, found: Mapping[str, Any], entry: LedgerEntry) -> list[str]:
    repair = entry.stage("repair")
    if repair is None or not entry.passed("repair"):
        return [f"the ledger entry of key {entry.build_key[:12]} has no passed repair"]
    problems = []
    recorded = repair.provenance
    if recorded is None:
        problems.append("the ledger entry records no provenance (repaired by an older farm)")
    elif recorded != found:
        fields = sorted(k for k in {*recorded, *found} if recorded.get(k) != found.get(k))
        problems.append(f"provenance differs from the ledger's in: {', '.join(fields)}")
    if repair.content_digest != content_digest(wheel):
        problems.append(f"the files in {wheel.name} are not those of the repaired wheel")
    ours = Path(repair.wheel or "").name
    renumbered = same_release(wheel.name, ours) and split_name(wheel.name)[2] > 0
    if wheel.name != ours and not renumbered:
        problems.append(f"{wheel.name} is neither {ours} nor a renumbered copy of it")
    return problems
