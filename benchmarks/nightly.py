"""Duration of a no-op `farm nightly`: everything in the matrix is already published.

Usage: python benchmarks/nightly.py [RUNS]
Sets up a throw-away state directory with the embedded registry, publishes the
demo for bookworm-arm64 once (`farm build demo --publish local`; BuildKit's
cache makes this quick after the first time on a machine), then times
`farm nightly --registry local --package demo` RUNS times (default 5). The
nightly asks the registry for every key and finds the wheel there, so it
builds nothing. Goal: under 5 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 5.0
PORT = 48766


def farm(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["farm", *argv], capture_output=True, text=True, check=False, env={**os.environ, **env}
    )
    if result.returncode != 0:
        sys.exit(f"farm {' '.join(argv)} failed: {result.stderr.strip()[-800:]}")
    return result


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="farm-nightly-bench-") as scratch:
        root = Path(scratch)
        env = {"FARM_STATE_DIR": str(root / "state"), "FARM_OUTPUT_DIR": str(root / "out")}
        farm("registry", "serve", "--detach", "--port", str(PORT), env=env)
        try:
            started = time.monotonic()
            farm("build", "demo", "--target", "bookworm-arm64", "--publish", "local", env=env)
            print(f"setup (build to install of the demo): {time.monotonic() - started:.0f} s")
            durations = []
            for _ in range(runs):
                started = time.monotonic()
                result = farm(
                    "nightly", "--registry", "local", "--package", "demo", "--json", env=env
                )
                durations.append(time.monotonic() - started)
                document = json.loads(result.stdout)
                if document["built"] != 0:
                    sys.exit("the nightly built something: the benchmark's premise is broken")
        finally:
            subprocess.run(["farm", "registry", "stop"], env={**os.environ, **env}, check=False)
    median, worst = statistics.median(durations), max(durations)
    print(f"no-op nightly over {runs} runs: median {median:.2f} s, worst {worst:.2f} s")
    print(f"goal < {GOAL_S:.0f} s: {'met' if worst < GOAL_S else 'NOT met'}")


if __name__ == "__main__":
    main()
