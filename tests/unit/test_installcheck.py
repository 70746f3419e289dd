"""The install check's inputs: credentials reach pip through the environment only, masked."""

from __future__ import annotations

from farm.credentials import Credentials
from farm.installcheck import SCRIPT, index_url_with_credentials, install_options
from farm.process import mask


def test_credentials_go_into_the_url_quoted_and_masked_everywhere() -> None:
    credentials = Credentials(username="ci job", password="p@ss/word:1", source="test")
    url = index_url_with_credentials("https://idx.example:8443/simple/", credentials)
    assert url == "https://ci%20job:p%40ss%2Fword%3A1@idx.example:8443/simple/"
    assert "p%40ss%2Fword%3A1" not in mask(f"pip said {url}")
    assert index_url_with_credentials("http://127.0.0.1:8080/simple/", None) == (
        "http://127.0.0.1:8080/simple/"
    )


def test_the_index_url_is_passed_by_name_never_by_value() -> None:
    options = install_options()
    assert options[:2] == ["-e", "PIP_INDEX_URL"]
    assert not any("://" in option for option in options)
    assert "$FARM_REQUIREMENT" in SCRIPT and "sha256sum" in SCRIPT
