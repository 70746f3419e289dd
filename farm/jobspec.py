"""A chosen package version for one target and Python: the input to planning and rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm.models import Recipe, Strategy, Target

# SOURCE_DATE_EPOCH when the recipe names none: 1980-01-01T00:00:00Z, the earliest time a zip
# (a wheel) can hold. A fixed value, not the files' mtimes, which are the checkout's time
# (hatchling makes the same choice with its own fixed default).
DEFAULT_SOURCE_DATE_EPOCH = 315532800


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One chosen package version for one target and Python, before any resources."""

    recipe: Recipe
    recipe_path: Path
    target: Target
    version: str
    python: str
    source_digest: str | None = None  # content hash of a source tree kept in the repository
    strategy: Strategy = "emulated"

    @property
    def context_dir(self) -> Path | None:
        """The BuildKit context for a source tree in the repository; None for git sources."""
        source = self.recipe.source
        if source.kind != "path":
            return None
        return (self.recipe_path.parent / source.path).resolve()

    @property
    def source_ref(self) -> str:
        return self.recipe.source.ref_for(self.version)

    @property
    def source_date_epoch(self) -> int:
        """The time every timestamp the build writes is set to (SOURCE_DATE_EPOCH)."""
        return self.recipe.source_date_epoch.get(self.version, DEFAULT_SOURCE_DATE_EPOCH)
