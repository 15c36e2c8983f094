#!/usr/bin/env bash
# Installs what vary-build and its tests use at run time, on Debian or Ubuntu.
# One list, used by the README's example command and by .ci/run.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fuse3: /dev/fuse access and fusermount3 (disorderfs, the fileordering variation)
# libfaketime: the time variation; locales: sources for a private tr_TR.UTF-8
# tzdata: real time zones; gcc, make, git, tar, xz, zip: the example and the tests' fixtures
$SUDO apt-get install -y -qq --no-install-recommends \
    fuse3 libfuse3-dev pkg-config libfaketime faketime locales tzdata \
    gcc libc6-dev make git tar gzip xz-utils zip binutils util-linux procps python3 \
    ca-certificates >/dev/null
# The fuse3 package's udev rule makes /dev/fuse usable by every user; containers and
# minimal images may lack udev, so do what it would.
if [ -e /dev/fuse ]; then $SUDO chmod 0666 /dev/fuse; fi
