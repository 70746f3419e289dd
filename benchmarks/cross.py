"""Emulated against cross: the same real package built both ways, side by side.

Usage: python benchmarks/cross.py [PACKAGE] [TARGET]   (default: zstandard bookworm-arm64)
Each strategy builds the package from source through `farm build --strategy S` in a
throw-away state directory; the recipe gets a unique pip option so BuildKit's cache cannot
serve the compile step (the toolchain stages may come from the cache: they are not what is
measured). Both wheels then go through repair and the smoke test under QEMU. Prints the
build stage's wall time for each, their ratio, and both smoke results.
Goal for a compile-heavy package on a 2-core x86_64 machine: emulated / cross >= 5.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL = 5.0


def catalog_copy(root: Path, package: str) -> Path:
    """The recipe with a unique, harmless pip option: a cold compile step every run."""
    catalog = root / "catalog"
    (catalog / "packages").mkdir(parents=True)
    text = (REPO / "recipes" / "packages" / f"{package}.yaml").read_text()
    unique = f'  pip_args: ["--src", "/tmp/farm-bench-{uuid.uuid4().hex[:12]}"]\n'
    text = text.replace("build:\n  kind: pep517\n", "build:\n  kind: pep517\n" + unique)
    if "path: ../../" in text:
        text = text.replace("path: ../../", f"path: {REPO}/")
    (catalog / "packages" / f"{package}.yaml").write_text(text)
    return catalog


def build(catalog: Path, package: str, target: str, strategy: str, root: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "FARM_STATE_DIR": str(root / f"state-{strategy}"),
        "FARM_OUTPUT_DIR": str(root / f"out-{strategy}"),
    }
    argv = ["farm", "--recipes", str(catalog), "build", package, "--target", target]
    result = subprocess.run(
        [*argv, "--strategy", strategy, "--json"], capture_output=True, text=True, env=env
    )
    if not result.stdout.strip():
        sys.exit(f"{strategy}: farm printed nothing: {result.stderr[-800:]}")
    document: dict[str, object] = json.loads(result.stdout)
    return document


def main() -> None:
    package = sys.argv[1] if len(sys.argv) > 1 else "zstandard"
    target = sys.argv[2] if len(sys.argv) > 2 else "bookworm-arm64"
    with tempfile.TemporaryDirectory(prefix="farm-cross-bench-") as scratch:
        root = Path(scratch)
        catalog = catalog_copy(root, package)
        results = {s: build(catalog, package, target, s, root) for s in ("cross", "emulated")}
        shutil.rmtree(root, ignore_errors=True)
    seconds = {}
    for strategy, document in results.items():
        stages = {s["stage"]: s for s in document["stages"]}  # type: ignore[union-attr]
        seconds[strategy] = float(stages["build"]["duration_s"])
        smoke = stages.get("smoke", {"state": "not reached", "detail": document.get("error")})
        print(
            f"{strategy:9} build {seconds[strategy]:7.1f} s; smoke {smoke['state']}: "
            f"{smoke['detail']}; wheel {Path(str(document.get('wheel'))).name}"
        )
    ratio = seconds["emulated"] / seconds["cross"]
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"emulated / cross = {ratio:.1f}x; goal >= {GOAL:.0f}x: {verdict}")


if __name__ == "__main__":
    main()
