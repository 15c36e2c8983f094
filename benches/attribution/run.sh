#!/usr/bin/env bash
# vary-build against `reprotest --auto-build` (Debian's package) on the same projects, side
# by side in one run: wall time and number of builds. See README.md.
# Usage (as root, from the repository root): benches/attribution/run.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-/var/tmp/vary-build-attribution-bench}
command -v reprotest >/dev/null || apt-get install -y -qq --no-install-recommends reprotest >/dev/null
cargo build --release --quiet
VB=$PWD/target/release/vary-build
rm -rf "$WORK"; mkdir -p "$WORK"

# Each project's build.sh writes out.txt and leaks the named inputs; it first works for
# BUILD_SECONDS (default 1) so that a build costs what a small real build does.
BUILD_SECONDS=${BUILD_SECONDS:-1}
project() { # name, body of build.sh
    mkdir -p "$WORK/$1"
    printf 'sleep %s\n%s\n' "$BUILD_SECONDS" "$2" > "$WORK/$1/build.sh"
    echo "src $1" > "$WORK/$1/input.txt"
}
project one-culprit 'date +%Z > out.txt; cat input.txt >> out.txt'
project two-culprits '{ date +%Z; hostname; } > out.txt'
project aslr 'head -n1 /proc/self/maps | cut -d- -f1 > out.txt'
project nondeterministic 'od -An -N4 -tx4 /dev/urandom > out.txt; umask >> out.txt'
if [ -n "${DEB_SOURCE:-}" ]; then cp -a "$DEB_SOURCE" "$WORK/debian-package"; fi

count() { wc -l < "$1" 2>/dev/null || echo 0; }
printf '%-18s %-10s %8s %7s  %s\n' project tool wall_s builds answer
for p in one-culprit two-culprits aslr nondeterministic debian-package; do
    [ -d "$WORK/$p" ] || continue
    if [ "$p" = debian-package ]; then
        cmd='dpkg-buildpackage -b -us -uc -j1'; art='../*.deb'
    else
        cmd='sh build.sh'; art='out.txt'
    fi
    for tool in vary-build reprotest; do
        c="$WORK/count-$p-$tool"; rm -f "$c"
        counted="echo build >> $c; $cmd"
        t0=$(date +%s.%N)
        if [ $tool = vary-build ]; then
            "$VB" --seed 1 -j 2 -s "$WORK/$p" -a "$art" --json "$WORK/$p-vb.json" -- sh -c "$counted" \
                > "$WORK/$p-vb.txt" 2>&1 || true
            answer=$(python3 -c "import json,sys;r=json.load(open(sys.argv[1]));print(r['culprits'], 'nondeterministic' if r['nondeterministic'] else '')" "$WORK/$p-vb.json")
        else
            (cd "$WORK" && reprotest --auto-build --min-cpus=1 -c "$counted" "$WORK/$p" "$art" -- null \
                > "$WORK/$p-rt.txt" 2>&1 || true)
            answer=$(sed -n '/^Observed unreproducibility/,/^The build is/p; /^Reproduction successful/p; /^Not reproducible/p' \
                "$WORK/$p-rt.txt" | grep -v '^The build is' | tr '\n' ' ' | cut -c1-150 || true)
        fi
        t1=$(date +%s.%N)
        printf '%-18s %-10s %8.1f %7s  %s\n' "$p" "$tool" "$(echo "$t1 - $t0" | bc)" "$(count "$c")" "$answer"
    done
done
