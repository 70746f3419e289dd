"""onnxruntime-gpu with the CUDA provider, cross-built for the CUDA 12 stand-in: the figures.

Usage:
  python benchmarks/onnxruntime_cuda.py [--publish REGISTRY] [--rebuild] [--target T]
  python benchmarks/onnxruntime_cuda.py --job-dir DIR [--memory-log FILE]

The first form runs `farm build onnxruntime-gpu --target standin-cuda12 --strategy cross`
(with `--publish`, through publish and install-back) in the current FARM_STATE_DIR and
FARM_OUTPUT_DIR, sampling the machine's used memory every 5 s. `--rebuild` adds `--no-cache`:
every Dockerfile step runs again but the compiler cache (a BuildKit cache mount) is kept, which
is the "rerun after an interruption or a packaging-only change" case. A cold run is the first
one on a machine whose cache mounts were pruned (`docker builder prune --filter
type=exec.cachemount`).

The second form reads a finished job directory (and a memory log of "epoch MiB" lines, as
a sampler running beside the build writes it).

Printed: the wheel's name, size and sha256; the build stage's wall time; the sum of the
compile steps' times from ninja's log (`build-info/ninja_log`, each edge's end minus start;
with N parallel jobs the wall time is about this sum over N); the number of objects; ccache's
hit rate (`build-info/ccache-stats.txt`); and the peak used memory above the baseline.
Goal: no OOM kill on 24 GiB with 2 cores (peak well under 24 GiB), and a rebuild with a warm
compiler cache in minutes, not hours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

GIB = 1024**3


def used_memory_mib() -> int:
    fields = dict(
        (line.split(":")[0], int(line.split()[1]))
        for line in Path("/proc/meminfo").read_text().splitlines()
    )
    return (fields["MemTotal"] - fields["MemAvailable"]) // 1024


class MemorySampler(threading.Thread):
    def __init__(self, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.time(), used_memory_mib()))
            self.stopped.wait(self.every)


def ninja_figures(log: Path) -> dict[str, float]:
    """Edges and the sum of their durations from a .ninja_log (v5/v6: start, end, mtime,
    output, hash; times in ms), with the CUDA objects' share apart (outputs ``*.cu.o``): the
    figures a recipe's ``build.measured`` takes."""
    total_ms, cuda_ms, edges = 0, 0, 0
    for line in log.read_text().splitlines():
        if line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 4:
            took = int(parts[1]) - int(parts[0])
            total_ms += took
            cuda_ms += took if parts[3].endswith(".cu.o") else 0
            edges += 1
    return {"edges": edges, "compile_sum_s": total_ms / 1000, "cuda_compile_sum_s": cuda_ms / 1000}


def ccache_figures(stats: Path) -> dict[str, float]:
    text = stats.read_text()

    def number(label: str) -> int:
        match = re.search(rf"^\s*{label}:\s+(\d+)", text, re.M)
        return int(match[1]) if match else 0

    hits, misses = number("Hits"), number("Misses")
    return {
        "hits": hits,
        "misses": misses,
        "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
    }


def wheel_figures(wheel: Path) -> dict[str, object]:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return {"wheel": wheel.name, "size_mb": wheel.stat().st_size / 1e6, "sha256": digest}


def job_figures(job_dir: Path) -> dict[str, object]:
    info = job_dir / "wheels" / "build-info"
    build = json.loads((job_dir / "build.json").read_text())
    repaired = sorted((job_dir / "repaired").glob("*.whl"))
    wheels = repaired or sorted((job_dir / "wheels").glob("*.whl"))
    figures: dict[str, object] = {
        "job_dir": str(job_dir),
        "build_stage_s": build.get("duration_s"),
        **(wheel_figures(wheels[0]) if wheels else {}),
        "grafted": grafted_figures(job_dir),
    }
    if (info / "ninja_log").is_file():
        figures.update(ninja_figures(info / "ninja_log"))
    if (info / "ccache-stats.txt").is_file():
        figures["ccache"] = ccache_figures(info / "ccache-stats.txt")
    return figures


def memory_figures(samples: list[tuple[float, int]]) -> dict[str, float]:
    if not samples:
        return {}
    baseline = samples[0][1]
    peak = max(mib for _, mib in samples)
    return {
        "baseline_gib": baseline / 1024,
        "peak_gib": peak / 1024,
        "peak_above_gib": (peak - baseline) / 1024,
    }


def read_memory_log(path: Path) -> list[tuple[float, int]]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(float(row[0]), int(row[1])) for row in rows if len(row) == 2]


def farm_command() -> str:
    """The farm installed beside this interpreter (a venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "farm"
    return str(beside) if beside.is_file() else shutil.which("farm") or "farm"


def run(args: argparse.Namespace) -> dict[str, object]:
    argv = [farm_command(), "build", "onnxruntime-gpu", "--target", args.target]
    argv += ["--strategy", "cross"]
    argv += ["--json"]
    if args.publish:
        argv += ["--publish", args.publish]
    if args.rebuild:
        argv.append("--no-cache")
    sampler = MemorySampler()
    sampler.start()
    started = time.monotonic()
    # farm's progress goes on to this terminal (stderr); its JSON document is read from stdout.
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=os.environ)
    wall = time.monotonic() - started
    sampler.stopped.set()
    if not result.stdout.strip():
        sys.exit(f"farm printed nothing (exit {result.returncode}); its log is above")
    document = json.loads(result.stdout)
    if "stages" not in document:  # farm's error document: it stopped before any stage
        error = document.get("error", {})
        sys.exit(f"farm exited {result.returncode}: {error.get('message', 'no result')}")
    figures: dict[str, object] = {
        "command": " ".join(argv),
        "exit": result.returncode,
        "wall_s": round(wall, 1),
        "stages": {s["stage"]: [s["state"], s.get("duration_s")] for s in document["stages"]},
        "memory": memory_figures(sampler.samples),
    }
    if document.get("job_dir"):
        figures.update(job_figures(Path(document["job_dir"])))
    return figures


def grafted_figures(job_dir: Path) -> dict[str, object]:
    """What repair's check of the grafted libraries found (repaired/repair.json)."""
    record = job_dir / "repaired" / "repair.json"
    if not record.is_file():
        return {}
    grafted = json.loads(record.read_text()).get("grafted", [])
    return {
        "libraries": len(grafted),
        "sections_compared": sum(entry["sections_compared"] for entry in grafted),
        "sections_differ": sum(len(entry["sections_differ"]) for entry in grafted),
        "loaded": sum(entry["load"] == "ok" for entry in grafted),
        "skipped": sum(entry["load"] == "skipped" for entry in grafted),
    }


def failed_run(figures: dict[str, object]) -> str | None:
    """Why the measured run failed (farm's exit code and the failed stages), or None."""
    code = figures.get("exit", 0)
    if not code:
        return None
    stages = figures.get("stages", {})
    failed = [name for name, state in stages.items() if state[0] == "failed"]  # type: ignore[attr-defined]
    return f"farm exited {code}; failed stage(s): {', '.join(failed) or 'none recorded'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="standin-cuda12")
    parser.add_argument("--publish", metavar="REGISTRY")
    parser.add_argument("--rebuild", action="store_true", help="--no-cache: warm compiler cache")
    parser.add_argument("--job-dir", type=Path, help="read a finished job instead of building")
    parser.add_argument("--memory-log", type=Path, help="with --job-dir: 'epoch MiB' samples")
    args = parser.parse_args()
    if args.job_dir:
        figures = job_figures(args.job_dir)
        if args.memory_log:
            figures["memory"] = memory_figures(read_memory_log(args.memory_log))
    else:
        figures = run(args)
    print(json.dumps(figures, indent=2))
    # The figures of a failed build are printed, and the benchmark fails with farm's code.
    failure = failed_run(figures)
    if failure:
        sys.exit(failure)


if __name__ == "__main__":
    main()
