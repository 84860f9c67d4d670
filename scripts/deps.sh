#!/bin/sh
# Install the Debian packages needed to build and test, when any is missing.
# Used by `make check`, `make cluster` and .ci/run; safe to run repeatedly.
set -eu

PKGS="build-essential pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler
liblmdb-dev check libisal-dev libinih-dev python3 iproute2 nftables
procps"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
