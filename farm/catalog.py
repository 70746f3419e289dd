"""Loading targets and recipes from YAML into validated models.

A catalog directory holds ``targets/*.yaml`` and ``packages/*.yaml``. The
built-in catalog ships with farm; users add directories with ``--recipes`` or
``FARM_RECIPES`` (``os.pathsep``-separated), and a later directory's file
replaces a built-in one of the same name; a file's ``name`` field must be its
file name. Every problem is reported as a :class:`~farm.errors.CatalogError`
naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from farm.debs import check_lock
from farm.errors import CatalogError, UnknownNameError
from farm.models import CudaStack, FieldRuleError, Recipe, Target
from farm.paths import data_dir

ModelT = TypeVar("ModelT", bound=BaseModel)
NamedT = TypeVar("NamedT", Target, Recipe, CudaStack)


@dataclass(frozen=True)
class Entry(Generic[ModelT]):
    """A validated model and the file it came from."""

    model: ModelT
    path: Path


@dataclass(frozen=True)
class Catalog:
    targets: Mapping[str, Entry[Target]]
    recipes: Mapping[str, Entry[Recipe]]

    def target(self, name: str) -> Entry[Target]:
        for entry in self.targets.values():
            if name == entry.model.name or name in entry.model.aliases:
                return entry
        known = ", ".join(sorted(self.targets))
        raise UnknownNameError(
            f"unknown target {name!r} (known targets: {known})",
            hint="`farm targets` lists them with their aliases",
        )

    def recipe_for_wheel(self, wheel_name: str) -> Entry[Recipe] | None:
        """The recipe whose distribution a wheel file belongs to, if the catalog has one.

        The one place a wheel file name is matched to a recipe: `farm smoke`, `farm inspect`
        and `farm repair` all ask here.
        """
        distribution = wheel_distribution(wheel_name)
        for entry in self.recipes.values():
            if _normalise(entry.model.distribution or entry.model.name) == distribution:
                return entry
        return None

    def recipe(self, name: str) -> Entry[Recipe]:
        entry = self.recipes.get(_normalise(name))
        if entry is None:
            known = ", ".join(sorted(self.recipes))
            raise UnknownNameError(
                f"unknown package {name!r} (known packages: {known})",
                hint="`farm recipes` lists them",
            )
        return entry


def wheel_distribution(wheel_name: str) -> str:
    """The normalised distribution name a wheel file name starts with (PEP 427, PEP 503)."""
    return _normalise(wheel_name.split("-")[0])


def _normalise(name: str) -> str:
    # PEP 503 name normalisation, so onnxruntime_gpu finds onnxruntime-gpu.
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-"))


def catalog_dirs(configured: Sequence[Path] = (), extra: Sequence[Path] = ()) -> list[Path]:
    """Built-in catalog first, then ``FARM_RECIPES`` (``configured``), then ``--recipes``."""
    return [data_dir("recipes"), *configured, *extra]


def load_catalog(dirs: Iterable[Path]) -> Catalog:
    dirs = list(dirs)
    for directory in dirs:
        if not directory.is_dir():
            raise CatalogError(directory, None, "catalog directory does not exist")
    stacks = load_stacks(dirs)
    targets: dict[str, Entry[Target]] = {}
    recipes: dict[str, Entry[Recipe]] = {}
    for directory in dirs:
        for path in sorted(directory.glob("targets/*.yaml")):
            target = _load_named(path, Target, partial(with_shared_stack, path=path, stacks=stacks))
            targets[target.name] = Entry(target, path)
        for path in sorted(directory.glob("packages/*.yaml")):
            recipe = _load_named(path, Recipe)
            recipes[recipe.name] = Entry(recipe, path)
    catalog = Catalog(targets=targets, recipes=recipes)
    _check_names(catalog)
    return catalog


def _check_names(catalog: Catalog) -> None:
    """Cross-file rules: unique target names and aliases, recipes naming real targets."""
    seen: dict[str, Path] = {}
    for entry in catalog.targets.values():
        for name in (entry.model.name, *entry.model.aliases):
            if name in seen:
                raise CatalogError(
                    entry.path,
                    "aliases",
                    f"{name!r} is already a name or alias in {display(seen[name])}",
                )
            seen[name] = entry.path
    for recipe_entry in catalog.recipes.values():
        recipe = recipe_entry.model
        for field, names in (
            ("defaults", recipe.defaults),
            ("smoke.expect_providers", getattr(recipe.smoke, "expect_providers", {})),
            ("nightly_targets", {name: None for name in recipe.nightly_targets}),
            ("strategy", recipe.strategy),
            ("overrides", recipe.overrides),
        ):
            for name in names:
                if name != "*" and name not in catalog.targets:
                    raise CatalogError(
                        recipe_entry.path, f"{field}.{name}", f"{name!r} is not a target name"
                    )
        source = recipe.source
        if source.kind == "path" and not (recipe_entry.path.parent / source.path).is_dir():
            raise CatalogError(
                recipe_entry.path, "source.path", f"{source.path!r} is not a directory"
            )
        _check_locks(recipe_entry)


def _check_locks(entry: Entry[Recipe]) -> None:
    """Each package lock a recipe names (for itself or one target) reads, and locks what
    that build installs."""
    for name in (None, *entry.model.overrides):
        build = (entry.model.for_target(name) if name else entry.model).build
        lock = getattr(build, "package_lock", None)
        if lock is not None:
            check_lock(entry.path, lock)


def load_stacks(dirs: list[Path]) -> dict[str, Entry[CudaStack]]:
    """The CUDA stacks targets share (``stacks/NAME.yaml``), a later directory's first."""
    stacks: dict[str, Entry[CudaStack]] = {}
    for directory in dirs:
        for path in sorted(directory.glob("stacks/*.yaml")):
            stack = _load_named(path, CudaStack)
            stacks[stack.name] = Entry(stack, path)
    return stacks


def with_shared_stack(data: Any, path: Path, stacks: Mapping[str, Entry[CudaStack]]) -> Any:
    """A target's data with a shared stack named by ``cuda.stack`` put in its place, and
    ``base_image.runtime_packages`` named by package taken from that stack."""
    cuda = data.get("cuda") if isinstance(data, dict) else None
    if not isinstance(cuda, dict) or not isinstance(cuda.get("stack"), str):
        return data
    named = cuda["stack"]
    entry = stacks.get(named)
    if entry is None:
        known = ", ".join(sorted(stacks)) or "none"
        raise CatalogError(
            display(path), "cuda.stack", f"no CUDA stack is named {named!r} (known: {known})"
        )
    stack = entry.model.model_dump(mode="json")
    data = {**data, "cuda": {**cuda, "stack": stack}}
    base = data.get("base_image")
    runtime = base.get("runtime_packages") if isinstance(base, dict) else None
    if isinstance(runtime, list):
        by_name = {package["name"]: package for package in stack["packages"]}
        picked = []
        for index, item in enumerate(runtime):
            if isinstance(item, str) and item not in by_name:
                raise CatalogError(
                    display(path),
                    f"base_image.runtime_packages[{index}]",
                    f"stack {named} has no package {item!r} (it has {', '.join(by_name)})",
                )
            picked.append(by_name[item] if isinstance(item, str) else item)
        data["base_image"] = {**base, "runtime_packages": picked}
    return data


def _load_named(
    path: Path, model: type[NamedT], resolve: Callable[[Any], Any] | None = None
) -> NamedT:
    """A model whose ``name`` is its file name, so that a file in a later directory
    replaces the one its name says, and the name says which file to read. ``resolve``
    puts shared parts in place before validation."""
    loaded = load_model(path, model, resolve)
    if loaded.name != path.stem:
        raise CatalogError(
            display(path),
            "name",
            f"{loaded.name!r} differs from the file name {path.name!r}; they must match",
        )
    return loaded


def load_model(
    path: Path, model: type[ModelT], resolve: Callable[[Any], Any] | None = None
) -> ModelT:
    data = read_yaml(path)
    if resolve is not None:
        data = resolve(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, exc, data) from None


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(display(path), None, f"cannot read file ({exc})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{display(path)}:{mark.line + 1}:{mark.column + 1}" if mark else display(path)
        raise CatalogError(where, None, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(display(path), None, f"invalid YAML: {exc}") from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _validation_error(path: Path, exc: ValidationError, data: Any = None) -> CatalogError:
    # An unknown field is most often a typo of a missing one: report it first.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    field = _field_path(first, data)
    rule = _rule_text(first)
    if len(errors) > 1:
        rule += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return CatalogError(display(path), field, rule)


def _field_path(error: Mapping[str, Any], data: Any = None) -> str | None:
    """Dotted path of the failing field as the file spells it: ``rules[2].requires.python``
    (pydantic's location also names the member of a tagged union, ``build.pep517.…``, which
    is no key of the file and is left out)."""
    parts = _in_file(list(error["loc"]), data)
    raised = error.get("ctx", {}).get("error")
    if isinstance(raised, FieldRuleError) and raised.field:
        # ``[N]`` is a list index (farm.models._refuse_control writes them so)
        parts.extend(
            int(part[1:-1]) if re.fullmatch(r"\[\d+\]", part) else part
            for part in raised.field.split(".")
        )
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or None


def _in_file(loc: list[Any], data: Any) -> list[Any]:
    if data is None:
        return loc
    kept, node = [], data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and not last and part == node.get("kind"):
            continue  # the tag of a union member (``source: {kind: path, path: …}``)
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not last:
            continue  # a union member's tag (a missing field is the last part, and kept)
        kept.append(part)
    return kept


def _rule_text(error: Mapping[str, Any]) -> str:
    kind, message = error["type"], str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    # Pydantic quotes the input in some messages: control characters are shown escaped.
    text = message.removeprefix("Value error, ")
    return re.sub(r"[\x00-\x1f\x7f]", lambda found: repr(found[0])[1:-1], text)


def display(path: Path | str) -> str:
    """A path relative to the working directory when it lies below it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
