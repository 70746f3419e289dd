"""Registry profiles: where each kind uploads and reads, and how config errors read."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.catalog import Catalog
from farm.errors import CatalogError, UnknownNameError, UsageError
from farm.registries import load_config, locate, routes_by_target
from farm.settings import Settings

GITLAB = """
[registries.gitlab]
kind = "gitlab"
url = "https://gitlab.example.com/"
project = "jetson/wheels-{target}"
group = "jetson"
"""
DEVPI = """
[registries.team]
kind = "devpi"
url = "http://devpi.internal:3141"
user = "farm"
bases = ["root/pypi"]
"""
GENERIC = """
[registries.artifacts]
kind = "generic"
upload_url = "https://artifacts.example.com/api/pypi/jp{jetpack}-cu{cuda}/"
simple_url = "https://artifacts.example.com/api/pypi/jp{jetpack}-cu{cuda}/simple/"
"""


def _config(tmp_path: Path, text: str, name: str = "farm.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_gitlab_uploads_to_the_encoded_project_and_reads_from_the_group(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = load_config(_config(tmp_path, GITLAB), environ={}, cwd=tmp_path)
    location = locate("gitlab", config.profile("gitlab"), catalog.targets["jetpack6"].model)
    api = "https://gitlab.example.com/api/v4"
    assert location.upload_url == f"{api}/projects/jetson%2Fwheels-jetpack6/packages/pypi"
    assert location.simple_url == f"{api}/projects/jetson%2Fwheels-jetpack6/packages/pypi/simple/"
    assert location.read_url == f"{api}/groups/jetson/-/packages/pypi/simple/"


def test_a_numeric_gitlab_project_id_is_used_as_is(tmp_path: Path) -> None:
    text = GITLAB.replace('"jetson/wheels-{target}"', '"4242"').replace('group = "jetson"\n', "")
    config = load_config(_config(tmp_path, text), environ={}, cwd=tmp_path)
    location = locate("gitlab", config.profile("gitlab"), None)
    assert location.upload_url.endswith("/api/v4/projects/4242/packages/pypi")
    assert location.read_url == location.simple_url


def test_devpi_gets_a_non_volatile_index_per_target(tmp_path: Path, catalog: Catalog) -> None:
    config = load_config(_config(tmp_path, DEVPI), environ={}, cwd=tmp_path)
    profile = config.profile("team")
    assert routes_by_target(profile)
    location = locate("team", profile, catalog.target("jp5").model)
    assert location.upload_url == "http://devpi.internal:3141/farm/jetpack5/"
    assert location.simple_url == "http://devpi.internal:3141/farm/jetpack5/+simple/"


def test_generic_templates_use_the_targets_stack(tmp_path: Path, catalog: Catalog) -> None:
    config = load_config(_config(tmp_path, GENERIC), environ={}, cwd=tmp_path)
    location = locate("artifacts", config.profile("artifacts"), catalog.targets["jetpack6"].model)
    assert location.simple_url == "https://artifacts.example.com/api/pypi/jp6.1-cu12.6/simple/"
    with pytest.raises(UsageError, match=r"routes by \{cuda\}, which target bookworm-arm64 lacks"):
        locate("artifacts", config.profile("artifacts"), catalog.targets["bookworm-arm64"].model)
    with pytest.raises(UsageError, match="name the target"):
        locate("artifacts", config.profile("artifacts"), None)


def test_profiles_come_from_tool_farm_in_pyproject(tmp_path: Path) -> None:
    _config(
        tmp_path,
        "[project]\nname = 'x'\n\n[tool.farm]\n"
        + DEVPI.replace("[registries", "[tool.farm.registries"),
        "pyproject.toml",
    )
    config = load_config(None, environ={}, cwd=tmp_path)
    assert set(config.profiles) == {"team"}
    assert config.source.endswith("pyproject.toml")


def test_farm_config_variable_wins_over_the_working_directory(tmp_path: Path) -> None:
    _config(tmp_path, GITLAB)
    elsewhere = _config(tmp_path, DEVPI, "other.toml")
    settings = Settings.from_environ({"FARM_CONFIG": str(elsewhere)})
    config = load_config(settings.registry_config, environ={}, cwd=tmp_path)
    assert set(config.profiles) == {"team"}


def test_no_configuration_means_no_profiles(tmp_path: Path) -> None:
    config = load_config(None, environ={}, cwd=tmp_path)
    assert config.profiles == {}
    with pytest.raises(UnknownNameError, match="unknown registry 'nope'"):
        config.profile("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[registries.x]\nkind = "nexus"\nurl = "http://h"\n', r"farm.toml: registries.x: "),
        ('[registries.x]\nkind = "pypiserver"\n', r"registries.x.pypiserver.url: Field required"),
        (
            '[registries.x]\nkind = "pypiserver"\nurl = "ftp://h"\n',
            r"registries.x.pypiserver.url: String should match",
        ),
        (
            '[registries.x]\nkind = "devpi"\nurl = "http://h"\nuser = "u"\nindex = "{arch}"\n',
            r"registries.x.index: unknown placeholder \{arch\}",
        ),
        ('[registry.x]\nkind = "devpi"\n', r"farm.toml: registry: unknown setting"),
        ("[registries.x\n", r"farm.toml: not valid TOML"),
        (
            '[registries.x]\nkind = "pypiserver"\nurl = "http://h"\npassword = "p"\n',
            r"registries.x.pypiserver.password: Extra inputs are not permitted",
        ),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_config(_config(tmp_path, text), environ={}, cwd=tmp_path)


def test_an_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="configuration file not found"):
        load_config(tmp_path / "missing.toml", environ={}, cwd=tmp_path)


def test_environment_variables_fill_settings(tmp_path: Path) -> None:
    text = (
        '[registries.ci]\nkind = "gitlab"\nurl = "${CI_SERVER_URL}"\nproject = "${CI_PROJECT_ID}"\n'
    )
    path = _config(tmp_path, text)
    environ = {"CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42"}
    location = locate("ci", load_config(path, environ=environ, cwd=tmp_path).profile("ci"), None)
    assert location.upload_url == "https://gitlab.example.com/api/v4/projects/42/packages/pypi"
    with pytest.raises(
        CatalogError, match=r"registries.ci.project: \$\{CI_PROJECT_ID\} is not set"
    ):
        load_config(path, environ={"CI_SERVER_URL": "https://g"}, cwd=tmp_path)
