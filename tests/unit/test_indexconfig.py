"""The snippets users paste: valid for their tool, explicit indexes, no secrets."""

from __future__ import annotations

import re
import sys

import pytest

from farm.indexconfig import snippet
from farm.registries import IndexLocation

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCATION = IndexLocation(
    registry="gitlab",
    upload_url="https://gitlab.example.com/api/v4/projects/7/packages/pypi",
    simple_url="https://gitlab.example.com/api/v4/projects/7/packages/pypi/simple/",
    read_url="https://gitlab.example.com/api/v4/groups/jetson/-/packages/pypi/simple/",
    kind="gitlab",
)


def _make(tool: str, mirrors: bool = True):  # type: ignore[no-untyped-def]
    return snippet(
        tool,  # type: ignore[arg-type]
        LOCATION,
        target="jetpack6",
        package="onnxruntime-gpu",
        version="1.23.2",
        mirrors_pypi=mirrors,
    )


def test_uv_index_is_explicit_and_only_for_aarch64_linux() -> None:
    made = _make("uv")
    document = tomllib.loads(made.text)
    (index,) = document["tool"]["uv"]["index"]
    assert index == {"name": "gitlab-jetpack6", "url": LOCATION.read_url, "explicit": True}
    (source,) = document["tool"]["uv"]["sources"]["onnxruntime-gpu"]
    assert source["index"] == "gitlab-jetpack6"
    assert source["marker"] == "platform_machine == 'aarch64' and sys_platform == 'linux'"
    assert made.password_env == "UV_INDEX_GITLAB_JETPACK6_PASSWORD"
    # Pinned, as pip's and poetry's are: PyPI's build of the name never stands in for it.
    assert document["project"]["dependencies"] == ["onnxruntime-gpu==1.23.2"]


def test_poetry_source_is_explicit_with_pypi_elsewhere() -> None:
    made = _make("poetry")
    document = tomllib.loads(made.text)
    assert document["tool"]["poetry"]["source"] == [
        {"name": "gitlab-jetpack6", "url": LOCATION.read_url, "priority": "explicit"}
    ]
    jetson, other = document["tool"]["poetry"]["dependencies"]["onnxruntime-gpu"]
    assert jetson["source"] == "gitlab-jetpack6" and jetson["version"] == "==1.23.2"
    assert "source" not in other and "!=" in other["markers"]
    assert made.username_env == "POETRY_HTTP_BASIC_GITLAB_JETPACK6_USERNAME"


@pytest.mark.parametrize("mirrors", [True, False])
def test_pip_uses_index_url_with_placeholders(mirrors: bool) -> None:
    made = _make("pip", mirrors)
    lines = [line for line in made.text.splitlines() if not line.startswith("#")]
    assert lines[0] == (
        "--index-url https://${FARM_GITLAB_USERNAME}:${FARM_GITLAB_PASSWORD}@"
        "gitlab.example.com/api/v4/groups/jetson/-/packages/pypi/simple/"
    )
    assert lines[1].startswith("onnxruntime-gpu==1.23.2 ; platform_machine == 'aarch64'")
    assert not re.search(r"^\s*--extra-index-url", made.text, re.MULTILINE)
    assert ("does not mirror PyPI" in made.text) is not mirrors


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("http://10.1.2.3:8080/simple/", "10.1.2.3"),
        ("http://127.0.0.1:8765/simple/", None),
        ("https://pypi.internal/simple/", None),
    ],
)
def test_pip_trusts_a_plain_http_host_only_where_one_is_used(url: str, trusted: str | None) -> None:
    location = IndexLocation(
        registry="flat", upload_url=url, simple_url=url, read_url=url, kind="pypiserver"
    )
    text = snippet(
        "pip", location, target="jetpack6", package="p", version="1", mirrors_pypi=False
    ).text
    lines = [line for line in text.splitlines() if line.startswith("--trusted-host")]
    assert lines == (
        [f"--trusted-host {trusted}  # plain http: the profile allows it"] if trusted else []
    )
