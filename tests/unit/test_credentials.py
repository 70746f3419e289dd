"""Where upload credentials come from, in which order, and that they are masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.credentials import resolve
from farm.errors import UsageError
from farm.process import mask
from farm.registries import GitlabRegistry, PypiserverRegistry

GITLAB = GitlabRegistry(kind="gitlab", url="https://gitlab.example.com", project="7")
PYPISERVER = PypiserverRegistry(kind="pypiserver", url="http://pypi.internal:8080")
UPLOAD = "https://gitlab.example.com/api/v4/projects/7/packages/pypi"


def test_gitlab_ci_job_token_authenticates_as_gitlab_ci_token(tmp_path: Path) -> None:
    found = resolve("gl", GITLAB, UPLOAD, environ={"CI_JOB_TOKEN": "job-tok-123"}, home=tmp_path)
    assert found is not None
    assert (found.username, found.password, found.source) == (
        "gitlab-ci-token",
        "job-tok-123",
        "CI_JOB_TOKEN",
    )
    assert mask("token job-tok-123 in a line") == "token *** in a line"


def test_a_deploy_token_is_preferred_to_the_job_token(tmp_path: Path) -> None:
    environ = {"CI_JOB_TOKEN": "job", "CI_DEPLOY_USER": "deployer", "CI_DEPLOY_PASSWORD": "dep-pw"}
    found = resolve("gl", GITLAB, UPLOAD, environ=environ, home=tmp_path)
    assert (
        found is not None and found.username == "deployer" and found.source == "CI_DEPLOY_PASSWORD"
    )


def test_twine_variables_come_before_gitlab_ci_ones(tmp_path: Path) -> None:
    environ = {"CI_JOB_TOKEN": "job", "TWINE_USERNAME": "me", "TWINE_PASSWORD": "twine-pw"}
    found = resolve("gl", GITLAB, UPLOAD, environ=environ, home=tmp_path)
    assert found is not None and (found.username, found.source) == ("me", "TWINE_PASSWORD")


def test_the_job_token_is_only_for_gitlab(tmp_path: Path) -> None:
    assert (
        resolve(
            "p",
            PYPISERVER,
            "http://pypi.internal:8080/",
            environ={"CI_JOB_TOKEN": "j"},
            home=tmp_path,
        )
        is None
    )


def test_a_profiles_own_variables_win(tmp_path: Path) -> None:
    profile = PYPISERVER.model_copy(update={"username_env": "MY_USER", "password_env": "MY_PW"})
    environ = {"MY_USER": "alice", "MY_PW": "alice-pw", "TWINE_PASSWORD": "other"}
    found = resolve("p", profile, "http://pypi.internal:8080/", environ=environ, home=tmp_path)
    assert found is not None and (found.username, found.source) == ("alice", "MY_PW")
    with pytest.raises(UsageError, match="password_env names MY_PW, which is not set"):
        resolve("p", profile, "http://pypi.internal:8080/", environ={}, home=tmp_path)


def test_pypirc_section_named_like_the_registry(tmp_path: Path) -> None:
    (tmp_path / ".pypirc").write_text("[team]\nusername = bob\npassword = bob-pw\n")
    found = resolve("team", PYPISERVER, "http://pypi.internal:8080/", environ={}, home=tmp_path)
    assert found is not None and (found.username, found.password) == ("bob", "bob-pw")
    assert found.source.endswith(".pypirc [team]")
    assert resolve("other", PYPISERVER, "http://x/", environ={}, home=tmp_path) is None


def test_netrc_entry_for_the_upload_host(tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine pypi.internal login carol password carol-pw\n")
    netrc.chmod(0o600)
    found = resolve("p", PYPISERVER, "http://pypi.internal:8080/", environ={}, home=tmp_path)
    assert found is not None and (found.username, found.password) == ("carol", "carol-pw")
    assert "carol-pw" not in repr(found)
