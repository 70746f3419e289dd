"""Peak memory and throughput of `farm publish` for a ~200 MB wheel on loopback.

Usage: python benchmarks/publish.py [SIZE_MB]
Starts the embedded registry (pypiserver) in a throw-away state directory,
makes a wheel of SIZE_MB (default 200) incompressible bytes, publishes it
with `farm publish --registry local`, then publishes it again (the idempotent
path: one index lookup, no upload). Peak memory is the largest resident set
of any process of the publish (farm itself or the twine it runs), read from
the kernel's rusage of waited-for children; pypiserver is not counted.
Goals: peak under 64 MB, throughput over 40 MB/s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEAK_GOAL_MB = 64.0
THROUGHPUT_GOAL_MBS = 40.0
PORT = 48765


def farm(*argv: str, env: dict[str, str]) -> tuple[float, float, str]:
    """Run farm; return wall seconds, the peak RSS in MB of its process tree, and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        process = subprocess.Popen(
            ["farm", *argv], stdout=out, stderr=err, env={**os.environ, **env}
        )
        # wait4: this child's own rusage, with the children it waited for (twine).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"farm {argv[0]} failed: {err.read().strip()[-500:]}")
        return elapsed, usage.ru_maxrss / 1024, out.read()


def _big_wheel(directory: Path, size_mb: int) -> Path:
    """Made in a child process: a forked child's peak RSS starts at its parent's size."""
    code = (
        "import os, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.registries.wheels import make_wheel;"
        "size = int(sys.argv[3]) << 20;"
        "print(make_wheel(Path(sys.argv[2]), 'farm-bench', payload=os.urandom(size)))"
    )
    made = subprocess.run(
        [sys.executable, "-c", code, str(REPO), str(directory), str(size_mb)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(made.stdout.strip())


def main() -> None:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as scratch:
        root = Path(scratch)
        env = {"FARM_STATE_DIR": str(root / "state")}
        subprocess.run(
            ["farm", "registry", "serve", "--detach", "--port", str(PORT)],
            check=True,
            env={**os.environ, **env},
        )
        try:
            wheel = _big_wheel(root / "dist", size_mb)
            size = wheel.stat().st_size / 1e6
            publish = (
                "publish",
                str(wheel),
                "--registry",
                "local",
                "--no-smoke-required",
                "--json",
            )
            wall, peak, output = farm(*publish, env=env)
            (published,) = json.loads(output)["published"]
            again, _, _ = farm(*publish, env=env)
        finally:
            subprocess.run(["farm", "registry", "stop"], check=False, env={**os.environ, **env})
    upload = size / published["upload_s"]
    print(f"wheel: {size:.0f} MB, state {published['state']}, {published['attempts']} attempt(s)")
    print(
        f"publish end to end: {wall:.1f} s, {size / wall:.0f} MB/s (farm start, sha256, "
        "index lookup, upload, read-back)"
    )
    print(
        f"upload (twine): {published['upload_s']:.1f} s, {upload:.0f} MB/s; goal > "
        f"{THROUGHPUT_GOAL_MBS:.0f} MB/s: {'met' if upload > THROUGHPUT_GOAL_MBS else 'NOT met'}"
    )
    print(
        f"peak memory: {peak:.0f} MB (largest of farm and twine); goal < {PEAK_GOAL_MB:.0f} MB: "
        f"{'met' if peak < PEAK_GOAL_MB else 'NOT met'}"
    )
    print(f"second publish (already there): {again:.1f} s")


if __name__ == "__main__":
    main()
