from __future__ import annotations

from pathlib import Path

from farm.baseimage import mmdebstrap_argv
from farm.build import job_dir
from farm.catalog import Catalog
from farm.network import network_secrets, proxy_build_args
from farm.plan import plan_job
from farm.resources import BuilderResources


def test_ca_bundle_comes_from_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    secrets = network_secrets({"SSL_CERT_FILE": str(ca)})
    assert secrets["farm-ca-bundle"] == str(ca)
    assert "farm-pip-conf" not in secrets


def test_pip_config_only_when_named(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://u:p@index.example/simple\n")
    assert network_secrets({"PIP_CONFIG_FILE": str(conf)})["farm-pip-conf"] == str(conf)


def test_proxy_settings_pass_as_build_args() -> None:
    args = proxy_build_args({"HTTPS_PROXY": "http://proxy:3128", "PATH": "/bin"})
    assert args == {"HTTPS_PROXY": "http://proxy:3128"}


def test_job_directory_is_keyed(catalog: Catalog, ci_runner: BuilderResources) -> None:
    job = plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner)
    directory = job_dir(job, Path("out"))
    assert directory == Path("out/demo/bookworm-arm64") / f"0.1.0-{job.build_key[:12]}"


def test_demo_key_follows_its_source_tree(catalog_copy: Path, ci_runner: BuilderResources) -> None:
    from farm.catalog import load_catalog

    before = plan_job(load_catalog([catalog_copy]), "demo", "bookworm-arm64", resources=ci_runner)
    source = catalog_copy.parent / "demo" / "src" / "farm_demo" / "_zstd.c"
    source.write_text(source.read_text() + "\n/* changed */\n")
    after = plan_job(load_catalog([catalog_copy]), "demo", "bookworm-arm64", resources=ci_runner)
    assert before.build_key != after.build_key


def test_the_rootfs_is_always_written_as_a_tarball(catalog: Catalog, tmp_path: Path) -> None:
    # mmdebstrap guesses the format from the extension; the farm's temporary name must not
    # turn the cached rootfs into a directory.
    target = catalog.targets["bookworm-arm64"].model
    assert target.base_image.bootstrap is not None
    argv = mmdebstrap_argv(target.base_image.bootstrap, tmp_path / ".x.123.partial.tar")
    assert "--format=tar" in argv
