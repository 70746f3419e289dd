from __future__ import annotations

import os
from pathlib import Path

import pytest

from farm.cudastack import DEFAULT_DEBIAN_MIRROR, DEFAULT_PYPI_INDEX, Mirrors
from farm.engine import EngineChoice
from farm.errors import UsageError
from farm.publish import RetryPolicy
from farm.settings import Settings

HOME = {"HOME": "/home/builder"}


def test_defaults_follow_xdg_under_home() -> None:
    settings = Settings.from_environ(HOME)
    assert settings.cache_dir == Path("/home/builder/.cache/farm")
    assert settings.state_dir == Path("/home/builder/.local/share/farm")
    assert settings.output_dir == Path("out")
    assert settings.recipe_dirs == () and settings.registry_config is None
    assert settings.engine == EngineChoice()
    assert (settings.builder_cpus, settings.builder_memory_gib) == (None, None)
    assert settings.publish_retry == RetryPolicy(attempts=4, first_delay_s=1.0)
    assert settings.mirrors == Mirrors(debian=DEFAULT_DEBIAN_MIRROR, pypi_index=DEFAULT_PYPI_INDEX)
    assert settings.debug is False


def test_xdg_directories_and_farm_variables_win_in_that_order() -> None:
    xdg = Settings.from_environ({**HOME, "XDG_CACHE_HOME": "/c", "XDG_DATA_HOME": "/d"})
    assert (xdg.cache_dir, xdg.state_dir) == (Path("/c/farm"), Path("/d/farm"))
    own = Settings.from_environ(
        {**HOME, "XDG_CACHE_HOME": "/c", "FARM_CACHE_DIR": "/fc", "FARM_STATE_DIR": "/fs"}
    )
    assert (own.cache_dir, own.state_dir) == (Path("/fc"), Path("/fs"))


def test_each_variable_lands_in_its_field() -> None:
    settings = Settings.from_environ(
        {
            **HOME,
            "FARM_OUTPUT_DIR": "/o",
            "FARM_RECIPES": os.pathsep.join(["/r1", "", "/r2"]),
            "FARM_CONFIG": "/etc/farm.toml",
            "FARM_ENGINE": "classic",
            "FARM_DOCKER": "/usr/bin/docker",
            "FARM_BUILDX_BUILDER": "native",
            "FARM_BUILDX_CACHE": "registry.example/cache",
            "FARM_BUILDER_CPUS": "12",
            "FARM_BUILDER_MEMORY_GIB": "64.5",
            "FARM_PUBLISH_ATTEMPTS": "2",
            "FARM_PUBLISH_BACKOFF_S": "0",
            "FARM_DEBIAN_MIRROR": "http://mirror/debian",
            "FARM_PYPI_INDEX": "http://mirror/simple",
            "FARM_DEBUG": "1",
        }
    )
    assert settings.output_dir == Path("/o")
    assert settings.recipe_dirs == (Path("/r1"), Path("/r2"))
    assert settings.registry_config == Path("/etc/farm.toml")
    assert settings.engine == EngineChoice(
        kind="classic",
        docker="/usr/bin/docker",
        builder="native",
        cache_ref="registry.example/cache",
    )
    assert (settings.builder_cpus, settings.builder_memory_gib) == (12, 64.5)
    assert settings.builder_resources().source == "environment"
    assert settings.builder_resources(cpus=2).source == "command line"
    assert settings.publish_retry == RetryPolicy(attempts=2, first_delay_s=0.0)
    assert settings.mirrors == Mirrors(
        debian="http://mirror/debian", pypi_index="http://mirror/simple"
    )
    assert settings.debug is True


def test_pip_index_url_is_the_fallback_index() -> None:
    settings = Settings.from_environ({**HOME, "PIP_INDEX_URL": "http://proxy/simple"})
    assert settings.mirrors.pypi_index == "http://proxy/simple"


def test_the_environment_is_kept_read_only_and_out_of_repr() -> None:
    settings = Settings.from_environ({**HOME, "TWINE_PASSWORD": "s3cret"})
    assert settings.environ["TWINE_PASSWORD"] == "s3cret"
    assert "s3cret" not in repr(settings)
    with pytest.raises(TypeError):
        settings.environ["TWINE_PASSWORD"] = "other"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FARM_ENGINE", "podman", "FARM_ENGINE='podman': expected 'buildx' or 'classic'"),
        ("FARM_BUILDER_CPUS", "many", "FARM_BUILDER_CPUS='many' is not a number"),
        ("FARM_BUILDER_MEMORY_GIB", "lots", "FARM_BUILDER_MEMORY_GIB='lots' is not a number"),
        ("FARM_PUBLISH_ATTEMPTS", "x", "FARM_PUBLISH_ATTEMPTS='x' is not a number"),
        ("FARM_PUBLISH_ATTEMPTS", "0", "FARM_PUBLISH_ATTEMPTS=0: must be a whole >= 1"),
        ("FARM_PUBLISH_ATTEMPTS", "2.5", "FARM_PUBLISH_ATTEMPTS=2.5: must be a whole >= 1"),
        ("FARM_PUBLISH_BACKOFF_S", "-1", "FARM_PUBLISH_BACKOFF_S=-1: must be >= 0"),
    ],
)
def test_a_bad_value_is_one_usage_line_naming_the_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        Settings.from_environ({**HOME, name: value})
    assert caught.value.exit_code == 2
    assert name in caught.value.message and message in caught.value.message
    assert "\n" not in caught.value.message
