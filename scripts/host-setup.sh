#!/usr/bin/env bash
# Prepares a Debian 12 (bookworm) x86_64 machine to build aarch64 wheels with farm:
#   - Docker engine (Debian's docker.io; its own client does BuildKit with DOCKER_BUILDKIT=1),
#   - QEMU user-mode emulation from bookworm-backports (QEMU 7.2 from bookworm crashes on
#     `import onnxruntime`; 10.x works),
#   - binfmt_misc mounted and qemu-aarch64 registered with the F flag, re-registered whenever the
#     interpreter changes (an F entry keeps the binary it opened at registration time),
#   - mmdebstrap for locally bootstrapped base images,
#   - the docker buildx CLI plugin (0.13.1, Debian trixie's static build, pinned by sha256; it
#     needs only libc6 >= 2.34), so both BuildKit clients farm knows can be used and tested,
#   - the docker daemon started when nothing runs it.
# Idempotent: run it again at any time; it changes only what is missing or stale.
# Usage: scripts/host-setup.sh   (as root; `farm doctor` then checks the result)
set -euo pipefail

say() { printf '+ %s\n' "$*"; }
die() { printf 'host-setup: error: %s\n' "$*" >&2; exit "${2:-1}"; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and registers binfmt handlers)" 2
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || die "written for Debian 12 (bookworm), found ${PRETTY_NAME:-unknown}" 2

export DEBIAN_FRONTEND=noninteractive
BACKPORTS=/etc/apt/sources.list.d/farm-bookworm-backports.sources
QEMU=/usr/bin/qemu-aarch64-static
BINFMT=/proc/sys/fs/binfmt_misc
ENTRY=$BINFMT/qemu-aarch64
STATE=/var/lib/farm
DOCKER=/usr/bin/docker  # Debian's client: BuildKit with DOCKER_BUILDKIT=1, or through buildx
# docker-buildx from Debian trixie: one file, taken by pool path and checked against the
# SHA256 that trixie's Packages index lists for it. Nothing else comes from trixie.
BUILDX_DEB=pool/main/d/docker-buildx/docker-buildx_0.13.1+ds1-3_amd64.deb
BUILDX_SHA256=fcf8c48204d1603c8f209451d7827eb91bf30759578baf7704e9e1a87e5f1d7f
BUILDX_VERSION=0.13.1+ds1-3
DEBIAN_MIRROR=${FARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

install_packages() {
    if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        say "adding bookworm-backports ($BACKPORTS)"
        printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
            'Suites: bookworm-backports' 'Components: main' \
            'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$BACKPORTS"
    fi
    local missing=()
    # patch: farm applies fixes to assembled CUDA stacks (farm/cudastack.py).
    for pkg in docker.io mmdebstrap arch-test binfmt-support ca-certificates patch curl; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    local qemu_version
    qemu_version=$(dpkg-query -W -f='${Version}' qemu-user-static 2>/dev/null || true)
    if [ ${#missing[@]} -gt 0 ] || ! dpkg --compare-versions "${qemu_version:-0}" ge 1:10; then
        say "apt-get update"
        apt-get update -q
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt-get install ${missing[*]}"
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if ! dpkg --compare-versions "${qemu_version:-0}" ge 1:10; then
        say "apt-get install -t bookworm-backports qemu-user-static (have: ${qemu_version:-none})"
        apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-user-static
    fi
}

register_binfmt() {
    if ! mountpoint -q "$BINFMT"; then
        say "mount -t binfmt_misc binfmt_misc $BINFMT"
        mount -t binfmt_misc binfmt_misc "$BINFMT"
    fi
    [ -x "$QEMU" ] || die "$QEMU is missing after installing qemu-user-static"
    mkdir -p "$STATE"
    local digest stamp="$STATE/binfmt-qemu-aarch64.sha256"
    digest=$(sha256sum "$QEMU" | cut -d' ' -f1)
    if [ -e "$ENTRY" ] && grep -q "^interpreter $QEMU\$" "$ENTRY" && grep -q '^flags: .*F' "$ENTRY" \
        && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        grep -q '^enabled' "$ENTRY" || { say "enable $ENTRY"; echo 1 > "$ENTRY"; }
        return
    fi
    if [ -e "$ENTRY" ]; then
        say "unregister stale $ENTRY"
        echo -1 > "$ENTRY"
    fi
    # ELF header of aarch64 executables and its mask, as in QEMU's scripts/qemu-binfmt-conf.sh.
    local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    say "register qemu-aarch64 -> $QEMU (flags CF)"
    printf ':qemu-aarch64:M::%s:%s:%s:CF' "$magic" "$mask" "$QEMU" > "$BINFMT/register"
    echo "$digest" > "$stamp"
}

install_buildx() {
    [ "$(uname -m)" = x86_64 ] || return 0  # the pinned file is amd64's
    if [ "$(dpkg-query -W -f='${Version}' docker-buildx 2>/dev/null || true)" = "$BUILDX_VERSION" ]; then
        return
    fi
    local deb
    deb=$(mktemp --suffix=.deb)
    say "install docker-buildx $BUILDX_VERSION ($DEBIAN_MIRROR/$BUILDX_DEB)"
    curl -fsSL --retry 3 -o "$deb" "$DEBIAN_MIRROR/$BUILDX_DEB" || die "downloading $BUILDX_DEB failed" 3
    if [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$BUILDX_SHA256" ]; then
        rm -f "$deb"
        die "$BUILDX_DEB has other bytes than its pin $BUILDX_SHA256" 3
    fi
    dpkg -i "$deb" >/dev/null
    rm -f "$deb"
}

start_docker() {
    if "$DOCKER" info >/dev/null 2>&1; then
        return
    fi
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        say "systemctl start docker"
        systemctl start docker
    else
        say "dockerd (background, log /var/log/farm-dockerd.log)"
        nohup dockerd >/var/log/farm-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do
        "$DOCKER" info >/dev/null 2>&1 && return
        sleep 1
    done
    die "the docker daemon did not answer within 60 s; see /var/log/farm-dockerd.log"
}

install_packages
install_buildx
register_binfmt
start_docker
say "ready: $("$DOCKER" version --format 'docker {{.Server.Version}}'), $("$QEMU" --version | head -n1)"
