from __future__ import annotations

import dataclasses

from farm.builders import onnxruntime as driver
from farm.catalog import Catalog, Entry
from farm.jobspec import JobSpec
from farm.plan import BuildJob, build_key, plan_document, plan_job
from farm.resources import BuilderResources

REQUIRED_JOB_FIELDS = {
    "package",
    "version",
    "target",
    "python",
    "platform",
    "base_image",
    "manylinux_tag",
    "exclude_libs",
    "build_key",
    "build_command",
}


def _plan(
    catalog: Catalog, resources: BuilderResources, target: str = "jetpack6", **choices: str
) -> BuildJob:
    return plan_job(catalog, "onnxruntime-gpu", target, resources=resources, **choices)


def _value_after(argv: list[str] | tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_jetpack6_job_builds_cuda_and_tensorrt_for_orin(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    document = plan_document([_plan(catalog, ci_runner, strategy="emulated")])
    assert document["schema_version"] == 1
    (job,) = document["jobs"]
    assert set(job) >= REQUIRED_JOB_FIELDS
    assert job["platform"] == "linux/arm64"
    assert job["manylinux_tag"] == "manylinux_2_35_aarch64"
    argv = job["build_command"]
    assert {"--use_cuda", "--use_tensorrt", "--build_wheel"} <= set(argv)
    assert _value_after(argv, "--cuda_home") == "/usr/local/cuda"
    assert _value_after(argv, "--cudnn_home") == "/usr/lib/aarch64-linux-gnu"
    assert _value_after(argv, "--tensorrt_home") == "/usr/lib/aarch64-linux-gnu"
    assert "CMAKE_CUDA_ARCHITECTURES=87" in argv
    assert "libcuda.so.1" in job["exclude_libs"]


def test_jetpack5_job_targets_xavier_and_orin(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    job = _plan(catalog, ci_runner, "jetpack5").to_json()
    assert "CMAKE_CUDA_ARCHITECTURES=72;87" in job["build_command"]
    assert job["version"] == "1.16.3"
    assert job["python"] == "3.8"


def test_plan_is_deterministic(catalog: Catalog, ci_runner: BuilderResources) -> None:
    first, second = _plan(catalog, ci_runner), _plan(catalog, ci_runner)
    assert first.to_json() == second.to_json()
    assert first.dockerfile == second.dockerfile


def test_builder_size_changes_parallelism_not_the_key(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    small = _plan(catalog, ci_runner)
    big = _plan(catalog, BuilderResources(cpus=16, memory_gib=128, source="test"))
    assert small.build_key == big.build_key
    assert small.dockerfile == big.dockerfile
    assert _value_after(small.build_command, "--parallel") == "2"
    assert _value_after(big.build_command, "--parallel") == "16"


def test_key_changes_with_version_target_and_python(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    keys = {
        _plan(catalog, ci_runner, version="1.23.2").build_key,
        _plan(catalog, ci_runner, version="1.22.1").build_key,
        _plan(catalog, ci_runner, "jetpack5").build_key,
        _plan(catalog, ci_runner, "jetpack7").build_key,
    }
    assert len(keys) == 4


def _spec(catalog: Catalog, **changes: object) -> JobSpec:
    recipe: Entry = catalog.recipes["onnxruntime-gpu"]
    spec = JobSpec(
        recipe=recipe.model,
        recipe_path=recipe.path,
        target=catalog.targets["jetpack6"].model,
        version="1.23.2",
        python="3.10",
    )
    return dataclasses.replace(spec, **changes)


def test_key_changes_with_every_shaping_input(catalog: Catalog) -> None:
    spec = _spec(catalog)
    recipe, target = spec.recipe, spec.target
    base = build_key(spec, "FROM x\n")
    assert build_key(spec, "FROM x\n") == base
    assert build_key(spec, "FROM y\n") != base  # rendered Dockerfile
    new_build = recipe.build.model_copy(
        update={"cmake_defines": {"onnxruntime_USE_FLASH_ATTENTION": "OFF"}}
    )
    changed_build = recipe.model_copy(update={"build": new_build})
    assert build_key(_spec(catalog, recipe=changed_build), "FROM x\n") != base
    new_source = recipe.source.model_copy(update={"ref": "release-{version}"})
    changed_source = recipe.model_copy(update={"source": new_source})
    assert build_key(_spec(catalog, recipe=changed_source), "FROM x\n") != base
    new_base = target.base_image.model_copy(update={"digest": "sha256:" + "0" * 64})
    changed_target = target.model_copy(update={"base_image": new_base})
    assert build_key(_spec(catalog, target=changed_target), "FROM x\n") != base
    assert build_key(_spec(catalog, python="3.11"), "FROM x\n") != base


def test_key_ignores_what_only_chooses_jobs(catalog: Catalog) -> None:
    spec = _spec(catalog)
    base = build_key(spec, "FROM x\n")
    more_versions = spec.recipe.model_copy(update={"versions": (*spec.recipe.versions, "1.99.0")})
    assert build_key(_spec(catalog, recipe=more_versions), "FROM x\n") == base
    described = spec.target.model_copy(update={"description": "another text"})
    assert build_key(_spec(catalog, target=described), "FROM x\n") == base


def test_key_changes_with_farm_version(catalog: Catalog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(catalog)
    base = build_key(spec, "FROM x\n")
    monkeypatch.setattr("farm.plan.__version__", "99.0.0")
    assert build_key(spec, "FROM x\n") != base


def test_recipe_cmake_defines_follow_the_architectures(catalog: Catalog) -> None:
    defines = driver.cmake_defines(_spec(catalog))
    assert next(iter(defines)) == "CMAKE_CUDA_ARCHITECTURES"
    assert defines["onnxruntime_BUILD_UNIT_TESTS"] == "OFF"
