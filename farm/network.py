"""The host's network settings, passed on to containers and to the farm's own HTTP requests.

Company networks often intercept TLS with their own CA and route through a
proxy. Whatever the host was told (``PIP_CERT``, ``SSL_CERT_FILE``, proxy
variables) is handed to BuildKit steps as secrets and predefined build args,
and used by the registry client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CA_SECRET = "farm-ca-bundle"  # noqa: S105 - a BuildKit secret id, not a secret
PIP_CONF_SECRET = "farm-pip-conf"  # noqa: S105 - a secret id
_CA_ENV = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
_PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def ca_bundle(environ: Mapping[str, str] | None = None) -> str | None:
    """The CA bundle the host's tools are told to use, else the system one, if present."""
    env = os.environ if environ is None else environ
    for candidate in [*(env.get(name) for name in _CA_ENV), str(_DEFAULT_CA)]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def network_secrets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host's CA bundle and (explicitly configured) pip config as BuildKit secret files.

    A TLS-intercepting proxy makes every download in the container fail
    without the host's CA bundle. The host's pip.conf is passed only when
    ``PIP_CONFIG_FILE`` names it: a general one may point at host-only paths.
    """
    env = os.environ if environ is None else environ
    secrets: dict[str, str] = {}
    bundle = ca_bundle(env)
    if bundle is not None:
        secrets[CA_SECRET] = bundle
    pip_conf = env.get("PIP_CONFIG_FILE")
    if pip_conf and Path(pip_conf).is_file():
        secrets[PIP_CONF_SECRET] = pip_conf
    return secrets


def proxy_build_args(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Docker's predefined proxy build args: used by RUN steps, kept out of image history."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in _PROXY_ENV if env.get(name)}


# Where container_options() mounts the host's files in a container.
CONTAINER_CA = "/run/farm/ca-bundle.pem"
CONTAINER_PIP_CONF = "/run/farm/pip.conf"


def container_options(environ: Mapping[str, str] | None = None) -> list[str]:
    """``docker run``/``create`` options that give a container the host's network settings.

    The CA bundle and an explicitly named pip config (as :func:`network_secrets` picks them)
    are mounted read-only and named by the variables pip, requests and OpenSSL read; proxy
    variables pass by name, so their values (which may hold credentials) reach the container
    through the docker client's environment, never a command line.
    """
    env = os.environ if environ is None else environ
    files = network_secrets(env)
    options: list[str] = []
    if CA_SECRET in files:
        options += ["--volume", f"{files[CA_SECRET]}:{CONTAINER_CA}:ro"]
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            options += ["--env", f"{name}={CONTAINER_CA}"]
    if PIP_CONF_SECRET in files:
        options += ["--volume", f"{files[PIP_CONF_SECRET]}:{CONTAINER_PIP_CONF}:ro"]
        options += ["--env", f"PIP_CONFIG_FILE={CONTAINER_PIP_CONF}"]
    for name in _PROXY_ENV:
        if env.get(name):
            options += ["--env", name]
    return options
