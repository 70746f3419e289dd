# ruff: noqa: E501 - apt's and libprotobuf's own lines, quoted whole
"""A check or a grafted library that dies says why in one line: its first fatal line and the
signal, never only "time limit" or the last line of noise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from farm.catalog import Catalog
from farm.engine import Engine
from farm.errors import RepairFailed
from farm.repair import read_graft_report
from farm.smoke import crash_detail

PROTOBUF_ABORT = """\
[libprotobuf ERROR google/protobuf/descriptor_database.cc:641] File already exists in database:
[libprotobuf FATAL google/protobuf/descriptor.cc:1988] CHECK failed: GeneratedDatabase()->Add(encoded_file_descriptor, size):
terminate called after throwing an instance of 'google::protobuf::FatalException'
  what():  CHECK failed: GeneratedDatabase()->Add(encoded_file_descriptor, size):
qemu: uncaught target signal 6 (Aborted) - core dumped
"""


def test_an_abort_names_the_fatal_line_and_the_signal() -> None:
    detail = crash_detail(PROTOBUF_ABORT, 134)
    assert detail.startswith("[libprotobuf FATAL google/protobuf/descriptor.cc:1988] CHECK failed")
    assert detail.endswith("(ended by SIGABRT, exit 134)")


def test_a_segfault_without_a_message_names_what_qemu_said() -> None:
    out = "importing\nqemu: uncaught target signal 11 (Segmentation fault) - core dumped\n"
    assert crash_detail(out, 139) == (
        "qemu: uncaught target signal 11 (Segmentation fault) - core dumped "
        "(ended by SIGSEGV, exit 139)"
    )


def test_a_plain_failure_keeps_its_last_line() -> None:
    assert crash_detail("a\nValueError: bad\n", 1) == "ValueError: bad (exit 1)"
    assert crash_detail("", 0) == "no output"


def test_containers_run_under_an_init_without_core_dumps() -> None:
    engine = Engine(docker="docker", kind="buildx", client_version="28")
    argv = engine.run_argv("linux/arm64", "none")
    assert "--init" in argv
    assert argv[argv.index("--ulimit") + 1] == "core=0"


def _report(tmp_path: Path, **entry: object) -> Path:
    base = {
        "library": "farm_demo_graft.libs/libprotobuf-0a1b2c3d.so.32.0.12",
        "original": "/usr/lib/aarch64-linux-gnu/libprotobuf.so.32.0.12",
        "compared": [".text", ".rodata"],
        "differ": [],
        "load": "ok",
        "detail": "",
    }
    path = tmp_path / "grafted.json"
    path.write_text(json.dumps({"libraries": [{**base, **entry}]}))
    return path


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (
            {"differ": ["protodesc_cold", ".dynsym"]},
            "grafted libprotobuf-0a1b2c3d.so.32.0.12 differs from "
            "/usr/lib/aarch64-linux-gnu/libprotobuf.so.32.0.12 in protodesc_cold, .dynsym",
        ),
        (
            {"load": "failed", "detail": "[libprotobuf FATAL x] CHECK failed (ended by SIGABRT)"},
            "grafted libprotobuf-0a1b2c3d.so.32.0.12 does not load: [libprotobuf FATAL x]",
        ),
        ({"original": None}, "its original is not in the image"),
    ],
)
def test_a_damaged_grafted_library_fails_repair_naming_it(
    tmp_path: Path, catalog: Catalog, entry: dict[str, object], says: str
) -> None:
    target = catalog.target("standin-cuda12").model
    with pytest.raises(
        RepairFailed, match=re.escape("repair of w.whl for standin-cuda12")
    ) as caught:
        read_graft_report(_report(tmp_path, **entry), "w.whl", target)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_sound_report_is_kept_with_the_repair(tmp_path: Path, catalog: Catalog) -> None:
    target = catalog.target("standin-cuda12").model
    skipped = {"load": "skipped", "detail": "needs libcuda.so.1, which the target provides"}
    (library,) = read_graft_report(_report(tmp_path, **skipped), "w.whl", target)
    assert library.problem() is None
    assert library.to_json()["sections_compared"] == 2
