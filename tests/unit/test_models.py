from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from farm.catalog import Catalog
from farm.models import OnnxruntimeSmoke, Recipe, Target
from tests.conftest import BUILTIN_TARGETS


def _target_data(catalog: Catalog, name: str) -> dict[str, Any]:
    return copy.deepcopy(catalog.targets[name].model.model_dump(mode="json"))


def test_builtin_catalog_has_the_jetpacks_and_the_stand_ins(catalog: Catalog) -> None:
    assert set(catalog.targets) == BUILTIN_TARGETS


@pytest.mark.parametrize(
    ("name", "cuda", "cudnn", "tensorrt", "python", "glibc", "archs"),
    [
        ("jetpack5", "11.4", "8.6", "8.5", ("3.8",), "2.31", ("72", "87")),
        ("jetpack6", "12.6", "9.3", "10.3", ("3.10",), "2.35", ("87",)),
        ("jetpack7", "13.0", "9.12", "10.13", ("3.12",), "2.39", ("110",)),
    ],
)
def test_jetpack_targets_match_the_jetpack_table(
    catalog: Catalog,
    name: str,
    cuda: str,
    cudnn: str,
    tensorrt: str,
    python: tuple[str, ...],
    glibc: str,
    archs: tuple[str, ...],
) -> None:
    target = catalog.targets[name].model
    assert target.cuda is not None and target.cudnn is not None and target.tensorrt is not None
    assert (target.cuda.version, target.cudnn.version, target.tensorrt.version) == (
        cuda,
        cudnn,
        tensorrt,
    )
    assert target.python == python
    assert target.os.glibc == glibc
    assert target.cuda.architectures == archs
    assert target.manylinux_tag == f"manylinux_{glibc.replace('.', '_')}_aarch64"
    assert "libcuda.so.1" in target.provided_libs


def test_bookworm_target_is_cpu_only_and_bootstrapped(catalog: Catalog) -> None:
    target = catalog.targets["bookworm-arm64"].model
    assert target.cuda is None and target.tensorrt is None
    assert target.base_image.bootstrap is not None
    assert target.base_image.bootstrap.architecture == "arm64"
    assert target.arch == "aarch64"


def test_unknown_field_is_rejected(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack6")
    data["cuda"]["arch"] = ["87"]
    with pytest.raises(ValidationError, match="arch"):
        Target.model_validate(data)


def test_manylinux_tag_above_glibc_is_rejected(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack6")
    data["manylinux_tag"] = "manylinux_2_39_aarch64"
    with pytest.raises(ValidationError, match=r"above the target's glibc 2\.35"):
        Target.model_validate(data)


def test_manylinux_tag_for_another_arch_is_rejected(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack6")
    data["manylinux_tag"] = "manylinux_2_35_x86_64"
    with pytest.raises(ValidationError, match="is for x86_64"):
        Target.model_validate(data)


def test_a_lower_manylinux_tag_is_allowed(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack6")
    data["manylinux_tag"] = "manylinux_2_28_aarch64"
    assert Target.model_validate(data).manylinux_tag == "manylinux_2_28_aarch64"


def test_tensorrt_without_cuda_is_rejected(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack6")
    data["cuda"] = None
    with pytest.raises(ValidationError, match="need cuda"):
        Target.model_validate(data)


def test_a_python_too_old_for_auditwheel_needs_a_tools_interpreter(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack5")
    data["tools"] = None
    with pytest.raises(ValidationError, match=r"python 3\.8 cannot run auditwheel"):
        Target.model_validate(data)
    jetpack5 = catalog.targets["jetpack5"].model
    assert jetpack5.tools_python("3.8") == "python3.9"
    assert catalog.targets["jetpack6"].model.tools_python("3.10") == "python3.10"


def test_models_are_frozen(catalog: Catalog) -> None:
    target = catalog.targets["jetpack6"].model
    with pytest.raises(ValidationError):
        target.name = "other"  # type: ignore[misc]


def test_base_image_pins_by_digest(catalog: Catalog) -> None:
    data = _target_data(catalog, "jetpack6")
    data["base_image"]["digest"] = "sha256:" + "ab" * 32
    target = Target.model_validate(data)
    assert target.base_image.pinned == "nvcr.io/nvidia/l4t-jetpack:r36.4.0@sha256:" + "ab" * 32


def test_recipe_rejects_bad_specifiers_and_versions(catalog: Catalog) -> None:
    data = copy.deepcopy(catalog.recipes["onnxruntime-gpu"].model.model_dump(mode="json"))
    bad_rule = copy.deepcopy(data)
    bad_rule["rules"][0]["requires"]["cudnn"] = "nine"
    with pytest.raises(ValidationError, match="not a PEP 440 version specifier"):
        Recipe.model_validate(bad_rule)
    bad_version = copy.deepcopy(data)
    bad_version["versions"].append("latest")
    with pytest.raises(ValidationError, match="not a PEP 440 version"):
        Recipe.model_validate(bad_version)
    bad_default = copy.deepcopy(data)
    bad_default["defaults"]["jetpack6"] = "9.9.9"
    with pytest.raises(ValidationError, match="not in versions"):
        Recipe.model_validate(bad_default)


def test_git_source_ref_template(catalog: Catalog) -> None:
    source = catalog.recipes["onnxruntime-gpu"].model.source
    assert source.ref_for("1.23.2") == "v1.23.2"


def test_the_tensorrt_provider_is_asked_of_jetpacks_only(catalog: Catalog) -> None:
    smoke = catalog.recipes["onnxruntime-gpu"].model.smoke
    assert isinstance(smoke, OnnxruntimeSmoke)
    for name in ("jetpack5", "jetpack6", "jetpack7"):
        assert "TensorrtExecutionProvider" in smoke.providers_for(catalog.targets[name].model)
    for name in ("standin-cuda12", "standin-cuda13"):
        providers = smoke.providers_for(catalog.targets[name].model)
        assert providers == ("CUDAExecutionProvider", "CPUExecutionProvider"), name


def test_a_stand_in_names_what_it_stands_in_for_and_what_it_is_not(catalog: Catalog) -> None:
    for name, production in (("standin-cuda12", "jetpack6"), ("standin-cuda13", "jetpack7")):
        target = catalog.targets[name].model
        assert target.stands_in_for == production
        real = catalog.targets[production].model
        assert target.cuda is not None and real.cuda is not None
        assert target.cuda.version.split(".")[0] == real.cuda.version.split(".")[0]
        assert target.tensorrt is None
        assert "not JetPack" in target.description
        assert target.cuda.stack is not None and target.cross is not None
        assert target.cross_cuda_home == "/opt/farm/cuda"


def test_a_stack_and_a_cross_cuda_home_together_are_refused(catalog: Catalog) -> None:
    data = catalog.targets["standin-cuda13"].model.model_dump(mode="json")
    data["cross"]["cuda_home"] = "/usr/local/cuda"
    with pytest.raises(ValueError, match="leave cuda_home out"):
        Target.model_validate(data)


def test_a_stack_of_another_release_than_the_targets_cuda_is_refused(catalog: Catalog) -> None:
    data = catalog.targets["standin-cuda13"].model.model_dump(mode="json")
    data["cuda"]["stack"]["release"] = "13.1"
    with pytest.raises(ValueError, match=r"13\.1 is not the target's CUDA 13\.0"):
        Target.model_validate(data)
