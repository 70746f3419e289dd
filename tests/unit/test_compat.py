from __future__ import annotations

import pytest
from packaging.version import Version

from farm.catalog import Catalog
from farm.compat import select, violations
from farm.errors import IncompatibleError, UsageError


def test_jetpack6_cannot_take_onnxruntime_1_24_for_python_3_10(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"]
    with pytest.raises(IncompatibleError) as caught:
        select(recipe, catalog.targets["jetpack6"].model, version="1.24.1")
    message = caught.value.message
    assert "recipes/packages/onnxruntime-gpu.yaml: rules[" in message
    assert ".requires.python: onnxruntime-gpu 1.24.1 needs python >=3.11" in message
    assert "target jetpack6 has python 3.10" in message


def test_cudnn_9_rule_rejects_new_onnxruntime_on_jetpack5(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"]
    with pytest.raises(
        IncompatibleError,
        match=r"needs cudnn >=9, but target jetpack5 has "
        r"cudnn 8.6",
    ):
        select(recipe, catalog.targets["jetpack5"].model, version="1.18.1")


def test_cuda_13_needs_a_new_enough_onnxruntime(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"]
    with pytest.raises(IncompatibleError, match="needs cuda <13"):
        select(recipe, catalog.targets["jetpack7"].model, version="1.23.2")


def test_defaults_per_target(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"]
    jp5 = select(recipe, catalog.targets["jetpack5"].model)
    assert (jp5.version, jp5.python) == ("1.16.3", "3.8")
    jp6 = select(recipe, catalog.targets["jetpack6"].model)
    assert Version(jp6.version) < Version("1.24") and jp6.python == "3.10"
    jp7 = select(recipe, catalog.targets["jetpack7"].model)
    assert not violations(recipe.model, catalog.targets["jetpack7"].model, jp7.version, "3.12")


def test_every_default_fits_its_target(catalog: Catalog) -> None:
    for entry in catalog.recipes.values():
        for target_name, version in entry.model.defaults.items():
            target = catalog.targets[target_name].model
            assert any(not violations(entry.model, target, version, py) for py in target.python), (
                f"{entry.model.name} default {version} does not fit {target_name}"
            )


def test_gpu_recipe_refuses_a_cpu_target(catalog: Catalog) -> None:
    with pytest.raises(
        IncompatibleError, match="needs a target with cuda; bookworm-arm64 has none"
    ):
        select(catalog.recipes["onnxruntime-gpu"], catalog.targets["bookworm-arm64"].model)


def test_unknown_version_and_python(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"]
    with pytest.raises(UsageError, match=r"1\.99\.0 is not a known version"):
        select(recipe, catalog.targets["jetpack6"].model, version="1.99.0")
    with pytest.raises(UsageError, match=r"target jetpack6 has no python 3\.12"):
        select(recipe, catalog.targets["jetpack6"].model, python="3.12")
