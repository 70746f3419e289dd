"""Two cold builds of one package for one target: are the wheels the same bytes?

Usage: python benchmarks/reproducible.py PACKAGE TARGET [--strategy S] [--work DIR]

Each build is `farm build PACKAGE --target TARGET --no-cache` with its own fresh state
directory (ledger) and output directory, so no stage is skipped and BuildKit runs every
Dockerfile step again. BuildKit's cache mounts (pip's cache, ccache) are kept, as
`--no-cache` keeps them: they hold downloads and compiler outputs keyed by their inputs, not
build results. The sha256 of the built and of the repaired (provenance-stamped) wheels of the
two runs are printed with the durations; where they differ, each differing file of the wheel
is named (contents, executability, timestamps, order). Exit code 0 when the repaired wheels
are equal, 1 when not, 2 when a build failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from farm.wheelzip import wheel_differences


def cold_build(package: str, target: str, strategy: str | None, root: Path) -> dict[str, object]:
    """One `farm build --no-cache` into ``root``; its JSON document and duration."""
    farm = shutil.which("farm") or sys.exit("the farm command is not on PATH")
    argv = [farm, "build", package, "--target", target, "--no-cache", "--json"]
    argv += ["--output-dir", str(root / "out"), *(["--strategy", strategy] if strategy else [])]
    started = time.monotonic()
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FARM_STATE_DIR": str(root / "state")},
    )
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        sys.exit(2)
    document: dict[str, object] = json.loads(result.stdout)
    document["elapsed_s"] = round(time.monotonic() - started, 1)
    return document


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def compare(kind: str, first: Path, second: Path) -> bool:
    """Print the two wheels' sha256 and, when they differ, why; whether they are equal."""
    print(f"{kind}: {first.name}\n  run 1 sha256 {sha256(first)}\n  run 2 sha256 {sha256(second)}")
    differences = wheel_differences(first, second)
    for line in differences:
        print(f"  differs: {line}")
    print(f"  {'identical' if not differences else 'NOT identical'}")
    return not differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("target")
    parser.add_argument("--strategy", choices=("emulated", "cross"))
    parser.add_argument("--work", type=Path, help="keep both runs here (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="farm-reproducible-"))
    runs = []
    for number in (1, 2):
        runs.append(cold_build(args.package, args.target, args.strategy, work / f"run{number}"))
        print(f"run {number}: {runs[-1]['elapsed_s']} s, build key {runs[-1]['build_key']}")
    built = [Path(str(run["wheels"][0])) for run in runs]  # type: ignore[index]
    repaired = [Path(str(run["repaired"][0])) for run in runs]  # type: ignore[index]
    compare("built wheel", *built)
    same = compare("repaired wheel", *repaired)
    print(f"both runs kept under {work}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
