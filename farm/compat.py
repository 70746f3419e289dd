"""Which package versions fit which target, by the recipe's own rules.

A rule says: for package versions in ``versions``, the target's Python, CUDA,
cuDNN or TensorRT must satisfy ``requires``. The first broken rule is reported
with the file and the rule's position so the user can read the reason there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from farm.catalog import Catalog, Entry, display
from farm.errors import IncompatibleError, UsageError
from farm.models import Recipe, Target


@dataclass(frozen=True, kw_only=True)
class Violation:
    field: str  # where in the recipe file the broken rule sits
    rule: str  # one sentence: what is needed and what the target has


@dataclass(frozen=True, kw_only=True)
class Selection:
    version: str
    python: str


def violations(recipe: Recipe, target: Target, version: str, python: str) -> list[Violation]:
    """Every rule of ``recipe`` that ``version`` for ``target`` on ``python`` breaks."""
    found: list[Violation] = []
    for need in recipe.needs:
        if getattr(target, need) is None:
            found.append(
                Violation(
                    field="needs",
                    rule=f"{recipe.name} needs a target with {need}; {target.name} has none",
                )
            )
    for index, rule in enumerate(recipe.rules):
        if Version(version) not in SpecifierSet(rule.versions):
            continue
        for component, spec in rule.requires.items():
            have = python if component == "python" else target.component_version(component)
            if have is None:
                continue  # reported through `needs` when the recipe depends on it
            if Version(have) not in SpecifierSet(spec):
                found.append(
                    Violation(
                        field=f"rules[{index}].requires.{component}",
                        rule=(
                            f"{recipe.name} {version} needs {component} {spec}, but target "
                            f"{target.name} has {component} {have} ({rule.because})"
                        ),
                    )
                )
    return found


def select(
    recipe: Entry[Recipe], target: Target, *, version: str | None = None, python: str | None = None
) -> Selection:
    """The version and Python to build, from the user's choice or the recipe's defaults."""
    model = recipe.model
    if python is not None and python not in target.python:
        raise UsageError(
            f"target {target.name} has no python {python} (it has {', '.join(target.python)})"
        )
    pythons = [python] if python else list(target.python)
    if version is not None:
        if version not in model.versions:
            raise UsageError(
                f"{display(recipe.path)}: versions: {model.name} {version} is not a known version "
                f"(known: {', '.join(model.sorted_versions())})"
            )
        return Selection(
            version=version, python=_first_fitting_python(recipe, target, version, pythons)
        )
    candidates = (
        [model.defaults[target.name]] if target.name in model.defaults else model.sorted_versions()
    )
    for candidate in candidates:
        for py in pythons:
            if not violations(model, target, candidate, py):
                return Selection(version=candidate, python=py)
    # Nothing fits: report why the preferred candidate does not.
    return Selection(
        version=candidates[0], python=_first_fitting_python(recipe, target, candidates[0], pythons)
    )


def _first_fitting_python(
    recipe: Entry[Recipe], target: Target, version: str, pythons: list[str]
) -> str:
    first_problems: list[Violation] = []
    for py in pythons:
        problems = violations(recipe.model, target, version, py)
        if not problems:
            return py
        first_problems = first_problems or problems
    problem = first_problems[0]
    raise IncompatibleError(f"{display(recipe.path)}: {problem.field}: {problem.rule}")


def recipe_summary(catalog: Catalog, name: str) -> dict[str, Any]:
    """A recipe as ``farm recipes`` lists it: versions, and each target's default (None where
    no version fits)."""
    entry = catalog.recipes[name]
    recipe = entry.model
    defaults: dict[str, str | None] = {}
    for target_name, target in sorted(catalog.targets.items()):
        try:
            defaults[target_name] = select(entry, target.model).version
        except IncompatibleError:
            defaults[target_name] = None
    return {
        "name": recipe.name,
        "description": recipe.description,
        "build": recipe.build.kind,
        "versions": recipe.sorted_versions(),
        "needs": list(recipe.needs),
        "default_versions": defaults,
        "file": display(entry.path),
    }
