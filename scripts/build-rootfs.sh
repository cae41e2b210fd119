#!/usr/bin/env bash
# Builds the Debian trixie root filesystem that `lab image build` imports as the image's base
# where no container registry is reachable. `lab` runs this script itself (it is compiled into
# the binary); running it by hand does the same:
#   scripts/build-rootfs.sh MIRROR OUTPUT.tar
# Needs Linux, root and debootstrap.
set -euo pipefail
mirror=${1:?usage: build-rootfs.sh MIRROR OUTPUT.tar}
out=${2:?usage: build-rootfs.sh MIRROR OUTPUT.tar}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/pgha-lab-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase trixie "$work/rootfs" "$mirror"
# The downloaded packages and indexes are not part of a base image.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar --numeric-owner -C "$work/rootfs" -cf "$out" .
