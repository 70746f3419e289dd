"""Cold and warm `farm smoke` durations for an onnxruntime aarch64 wheel under QEMU.

Usage: python benchmarks/smoke.py WHEEL [TARGET]
Cold: the smoke environment image is removed first, so the venv and dependencies are installed.
Warm: the same command again, reusing that image. Goal on a 2-core x86_64 machine: warm < 60 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

WARM_GOAL_S = 60.0


def smoke(wheel: Path, target: str) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    result = subprocess.run(
        ["farm", "smoke", str(wheel), "--target", target, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"smoke failed: {result.stderr.strip().splitlines()[-1:]}")
    return elapsed, json.loads(result.stdout)


def main() -> None:
    wheel, target = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "bookworm-arm64")
    images = subprocess.run(
        ["docker", "images", "-q", f"farm.local/smoke-{target}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False)
    cold, first = smoke(wheel, target)
    warm, second = smoke(wheel, target)
    print(f"wheel: {wheel.name} on {target}")
    print(f"cold smoke: {cold:6.1f} s (environment {first['environment']})")
    print(
        f"warm smoke: {warm:6.1f} s (environment {second['environment']}); "
        f"goal < {WARM_GOAL_S:.0f} s: {'met' if warm < WARM_GOAL_S else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
