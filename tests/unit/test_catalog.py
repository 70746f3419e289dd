"""Every malformed catalog file fails with one line naming the file, the field and the rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from farm.catalog import load_catalog
from farm.errors import CatalogError, UnknownNameError


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _error(directory: Path) -> CatalogError:
    with pytest.raises(CatalogError) as caught:
        load_catalog([directory])
    message = caught.value.message
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return caught.value


def test_unknown_field_names_file_and_field(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "targets/jetpack6.yaml",
        "  home: /usr/local/cuda\n",
        "  home: /usr/local/cuda\n  arch: [87]\n",
    )
    error = _error(catalog_copy)
    assert error.path.endswith("targets/jetpack6.yaml")
    assert error.field == "cuda.arch"
    assert error.rule == "unknown field"


def test_missing_field(catalog_copy: Path) -> None:
    _edit(catalog_copy / "targets/jetpack5.yaml", "manylinux_tag: manylinux_2_31_aarch64\n", "")
    error = _error(catalog_copy)
    assert (error.field, error.rule) == ("manylinux_tag", "required field is missing")


def test_wrong_type_in_a_list_names_the_index(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "packages/onnxruntime-gpu.yaml",
        'requires: {cudnn: "<9"}',
        "requires: {cudnn: [9]}",
    )
    error = _error(catalog_copy)
    assert error.field == "rules[0].requires.cudnn"


def test_model_rule_names_the_field(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "targets/jetpack6.yaml", "manylinux_2_35_aarch64", "manylinux_2_36_aarch64"
    )
    error = _error(catalog_copy)
    assert error.field == "manylinux_tag"
    assert "glibc 2.35" in error.rule


def test_malformed_yaml_names_line_and_column(catalog_copy: Path) -> None:
    _edit(catalog_copy / "targets/jetpack7.yaml", 'python: ["3.12"]', 'python: ["3.12"')
    error = _error(catalog_copy)
    assert re.search(r"targets/jetpack7\.yaml:\d+:\d+$", error.path)
    assert "invalid YAML" in error.rule


def test_duplicate_key_is_an_error(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "targets/jetpack6.yaml",
        "platform: linux/arm64\n",
        "platform: linux/arm64\nplatform: linux/amd64\n",
    )
    error = _error(catalog_copy)
    assert "duplicate key 'platform'" in error.rule


def test_alias_clash_between_files(catalog_copy: Path) -> None:
    _edit(catalog_copy / "targets/jetpack7.yaml", "aliases: [jp7,", "aliases: [jp6, jp7,")
    error = _error(catalog_copy)
    assert error.field == "aliases"
    assert "'jp6' is already a name or alias" in error.rule


def test_recipe_default_for_unknown_target(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "packages/onnxruntime-gpu.yaml",
        '  jetpack6: "1.23.2"',
        '  jetpack6: "1.23.2"\n  jetpack9: "1.23.2"',
    )
    error = _error(catalog_copy)
    assert error.field == "defaults.jetpack9"
    assert "not a target name" in error.rule


def test_missing_catalog_directory(tmp_path: Path) -> None:
    error = _error(tmp_path / "nope")
    assert "does not exist" in error.rule


def test_user_directory_replaces_a_builtin_file(catalog_copy: Path, tmp_path: Path) -> None:
    extra = tmp_path / "mine"
    (extra / "targets").mkdir(parents=True)
    text = (catalog_copy / "targets/jetpack6.yaml").read_text()
    (extra / "targets/jetpack6.yaml").write_text(
        text.replace(
            "reference: nvcr.io/nvidia/l4t-jetpack:r36.4.0",
            "reference: registry.example.com/l4t-jetpack:r36.4.0",
        )
    )
    catalog = load_catalog([catalog_copy, extra])
    assert catalog.targets["jetpack6"].model.base_image.reference.startswith("registry.example")
    assert catalog.targets["jetpack6"].path == extra / "targets/jetpack6.yaml"


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("targets/jetpack6.yaml", "name: jetpack6\n", "name: jetpack6-mine\n"),
        ("packages/zstandard.yaml", "name: zstandard\n", "name: zstd\n"),
    ],
)
def test_a_name_that_is_not_the_file_name_is_refused(
    catalog_copy: Path, file: str, old: str, new: str
) -> None:
    _edit(catalog_copy / file, old, new)
    error = _error(catalog_copy)
    assert error.path.endswith(file) and error.field == "name"
    assert "differs from the file name" in error.rule


def test_a_user_file_cannot_replace_a_builtin_one_under_another_file_name(
    catalog_copy: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "mine"
    (extra / "targets").mkdir(parents=True)
    text = (catalog_copy / "targets/jetpack6.yaml").read_text()
    (extra / "targets/my-jetpack6.yaml").write_text(text)  # still says name: jetpack6
    with pytest.raises(CatalogError) as caught:
        load_catalog([catalog_copy, extra])
    assert caught.value.path.endswith("mine/targets/my-jetpack6.yaml")
    assert caught.value.field == "name"
    assert "'jetpack6' differs from the file name 'my-jetpack6.yaml'" in caught.value.rule


def test_lookup_by_alias_and_normalised_package_name(catalog_copy: Path) -> None:
    catalog = load_catalog([catalog_copy])
    assert catalog.target("jp6").model.name == "jetpack6"
    assert catalog.target("thor").model.name == "jetpack7"
    assert catalog.recipe("ONNXRuntime_GPU").model.name == "onnxruntime-gpu"
    with pytest.raises(UnknownNameError, match="unknown target 'jetpack9'"):
        catalog.target("jetpack9")
    with pytest.raises(UnknownNameError, match="unknown package 'torch'"):
        catalog.recipe("torch")


def test_a_target_naming_an_unknown_cuda_stack(catalog_copy: Path) -> None:
    _edit(catalog_copy / "targets/jetpack7.yaml", "stack: cuda-13.0-pypi", "stack: cuda-13.1-pypi")
    error = _error(catalog_copy)
    assert error.path.endswith("targets/jetpack7.yaml")
    assert error.field == "cuda.stack"
    assert error.rule == "no CUDA stack is named 'cuda-13.1-pypi' (known: cuda-13.0-pypi)"


def test_a_runtime_package_the_stack_does_not_hold(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "targets/standin-cuda13.yaml",
        "[nvidia-cuda-runtime, nvidia-cudnn-cu13]",
        "[nvidia-cuda-runtime, nvidia-cudnn-cu12]",
    )
    error = _error(catalog_copy)
    assert error.field == "base_image.runtime_packages[1]"
    assert error.rule.startswith("stack cuda-13.0-pypi has no package 'nvidia-cudnn-cu12'")


def test_a_broken_shared_stack_names_its_own_file(catalog_copy: Path) -> None:
    _edit(catalog_copy / "stacks/cuda-13.0-pypi.yaml", 'release: "13.0"', 'release: "13.1"')
    error = _error(catalog_copy)
    assert error.path.endswith("targets/jetpack7.yaml")
    assert (error.field, error.rule) == ("cuda.stack.release", "13.1 is not the target's CUDA 13.0")
    _edit(catalog_copy / "stacks/cuda-13.0-pypi.yaml", 'release: "13.1"', "releases: 13")
    error = _error(catalog_copy)
    assert error.path.endswith("stacks/cuda-13.0-pypi.yaml")
    assert error.field == "releases"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("cuda_home: /usr/local/cuda-12.6", "cuda_home: /usr/local/cuda-12.4", "cross.cuda_home"),
        ("- cuda-cross-aarch64-12-6", "- cuda-cross-aarch64-12-2", "cross.builder_packages[2]"),
        ("cuda:12.6.3-devel", "cuda:12.8.1-devel", "cross.builder_image.reference"),
    ],
)
def test_a_cross_section_of_another_cuda_release(
    catalog_copy: Path, old: str, new: str, field: str
) -> None:
    _edit(catalog_copy / "targets/jetpack6.yaml", old, new)
    error = _error(catalog_copy)
    assert error.path.endswith("targets/jetpack6.yaml")
    assert error.field == field
    assert error.rule.endswith("is not the target's CUDA 12.6")
