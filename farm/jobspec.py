"""A chosen package version for one target and Python: the input to planning and rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm.models import Recipe, Target


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One chosen package version for one target and Python, before any resources."""

    recipe: Recipe
    recipe_path: Path
    target: Target
    version: str
    python: str

    @property
    def source_ref(self) -> str:
        return self.recipe.source.ref_for(self.version)
