"""cibuildwheel against the farm's own PEP 517 builder: the same sdist built both ways.

Usage: python benchmarks/builders.py [PACKAGE] [TARGET]   (default: lru-dict bookworm-arm64)
PACKAGE's recipe has build kind cibuildwheel; a copy of it with kind pep517 (same pinned
sdist) is the farm's own builder. Each goes through `farm build --no-cache` (BuildKit's layer
cache unused: the build image and the compile step run cold; pip's cache mount stays) in a
throw-away state directory, then the farm's repair, inspect and smoke test under QEMU.
Prints a side-by-side table: build-stage time, the wheel as built and as repaired (tag,
size, sha256), whether the package's own tests ran in the build, and the smoke result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILDERS = ("cibuildwheel", "pep517")


def catalog_copy(root: Path, package: str) -> Path:
    """The built-in targets, the recipe as it is, and its twin built by the pep517 kind."""
    catalog = root / "catalog"
    (catalog / "packages").mkdir(parents=True)
    text = (REPO / "recipes" / "packages" / f"{package}.yaml").read_text()
    if "  kind: cibuildwheel\n" not in text:
        sys.exit(f"{package}'s recipe does not build with cibuildwheel")
    twin = text.replace(f"name: {package}\n", f"name: {package}-pep517\n")
    twin = twin.replace("  kind: cibuildwheel\n", "  kind: pep517\n")
    (catalog / "packages" / f"{package}.yaml").write_text(text)
    (catalog / "packages" / f"{package}-pep517.yaml").write_text(twin)
    return catalog


def build(catalog: Path, recipe: str, target: str, root: Path) -> dict[str, object]:
    env = {**os.environ, "FARM_STATE_DIR": str(root / f"state-{recipe}")}
    out = root / f"out-{recipe}"
    argv = ["farm", "--recipes", str(catalog), "build", recipe, "--target", target]
    result = subprocess.run(
        [*argv, "--no-cache", "--output-dir", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if not result.stdout.strip():
        sys.exit(f"{recipe}: farm printed nothing: {result.stderr[-800:]}")
    document: dict[str, object] = json.loads(result.stdout)
    (record,) = out.glob(f"{recipe}/{target}/*/build.json")
    document["build_record"] = json.loads(record.read_text())
    return document


def row(builder: str, document: dict[str, object]) -> dict[str, str]:
    stages = {s["stage"]: s for s in document["stages"]}  # type: ignore[union-attr]
    record: dict[str, object] = document["build_record"]  # type: ignore[assignment]
    wheel = Path(str(document.get("wheel")))
    repaired = wheel.is_file()
    tests = record.get("package_tests")
    smoke = stages.get("smoke", {"state": "not reached"})
    return {
        "builder": builder + (f" {record['cibuildwheel']}" if "cibuildwheel" in record else ""),
        "build s": f"{float(stages['build']['duration_s']):.1f}",
        "built": ", ".join(record.get("wheels", [])),  # type: ignore[arg-type]
        "repaired tag": wheel.name.split("-", 4)[-1].removesuffix(".whl") if repaired else "-",
        "size": f"{wheel.stat().st_size:,} B" if repaired else "-",
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()[:16] if repaired else "-",
        "package tests": "ran, passed" if tests else "not run (pep517 has none)",
        "smoke": "passed" if smoke["state"] == "ran" else str(smoke["state"]),
    }


def print_table(rows: list[dict[str, str]]) -> None:
    """One line per measure, one column per builder."""
    label = max(len(key) for key in rows[0])
    widths = [max(len(value) for value in r.values()) for r in rows]
    for key in rows[0]:
        cells = [f"{r[key]:<{w}}" for r, w in zip(rows, widths, strict=True)]
        print(f"  {key:<{label}} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="lru-dict")
    parser.add_argument("target", nargs="?", default="bookworm-arm64")
    args = parser.parse_args()
    recipes = {"cibuildwheel": args.package, "pep517": f"{args.package}-pep517"}
    with tempfile.TemporaryDirectory(prefix="farm-builders-bench-") as scratch:
        catalog = catalog_copy(Path(scratch), args.package)
        rows = [row(b, build(catalog, recipes[b], args.target, Path(scratch))) for b in BUILDERS]
    print(f"{args.package} for {args.target}, cold layer cache:")
    print_table(rows)
    seconds = [float(r["build s"]) for r in rows]
    print(f"  cibuildwheel / pep517 build time: {seconds[0] / seconds[1]:.2f}x")


if __name__ == "__main__":
    main()
