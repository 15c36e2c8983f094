#!/usr/bin/env bash
# Compares native, Debian's disorderfs and ours, side by side in one run, on:
#   (a) tar + cat over FILES small files   (b) make -j2 over CFILES small C files
#   (c) sequential write and read of SIZE_MB MiB
# Each measurement uses a fresh mount (cold FUSE caches, warm page cache of the
# underlying disk), times only the workload, and reports the median of REPS runs.
#
# Usage: benches/disorderfs/run.sh [WORKDIR]     (as root; from the repository root)
# Knobs: FILES=10000 CFILES=1000 SIZE_MB=1024 REPS=3 OURS=... DEBIAN=/usr/bin/disorderfs
#        VARIANTS="native debian ours ours-noopen" (native must stay in, first)
set -euo pipefail

FILES=${FILES:-10000}
CFILES=${CFILES:-1000}
SIZE_MB=${SIZE_MB:-1024}
REPS=${REPS:-3}
DEBIAN=${DEBIAN:-/usr/bin/disorderfs}
WORK=${1:-/var/tmp/disorderfs-bench}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${OURS:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
    (cd "$HERE" && cargo build --release -q -p disorderfs)
    OURS=$CARGO_TARGET_DIR/release/disorderfs
fi

MNT=$WORK/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u -z "$MNT" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
rm -rf "$WORK"
mkdir -p "$WORK/small" "$WORK/csrc" "$WORK/io" "$MNT"

# (a) FILES files of 1000 bytes in directories of 100.
for ((d = 0; d < FILES / 100; d++)); do
    mkdir "$WORK/small/d$d"
    for ((f = 0; f < 100; f++)); do
        head -c 1000 /dev/urandom > "$WORK/small/d$d/f$f"
    done
done
# (b) CFILES small C files and a Makefile with a pattern rule.
for ((i = 0; i < CFILES; i++)); do
    printf '#include <string.h>\nint f%d(const char *s) { return (int)strlen(s) * %d; }\n' "$i" "$i" \
        > "$WORK/csrc/f$i.c"
done
printf 'OBJS := $(patsubst %%.c,%%.o,$(wildcard *.c))\nall: $(OBJS)\n%%.o: %%.c\n\tgcc -O2 -c -o $@ $<\n' \
    > "$WORK/csrc/Makefile"

now() { date +%s.%N; }
# Reads a tree into the page cache. This VM's host reclaims page cache within seconds
# (a file read 5 s ago may be gone), so every measurement warms its tree first: all
# variants then start from the same warm underlying cache. (tar skips reading files
# when it writes to /dev/null itself, hence the pipe.)
warm() { tar -cf - -C "$1" . | cat >/dev/null; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# mount_variant VARIANT SRC -> prints the directory to work in
mount_variant() {
    case $1 in
        native) echo "$2" ;;
        debian)
            "$DEBIAN" --shuffle-dirents=yes -q "$2" "$MNT" >/dev/null
            echo "$MNT" ;;
        ours)
            "$OURS" --shuffle-dirents=yes --seed 1 -q "$2" "$MNT"
            echo "$MNT" ;;
        ours-noopen)
            "$OURS" --shuffle-dirents=yes --seed 1 --passthrough=no -q "$2" "$MNT"
            echo "$MNT" ;;
        noopen-noprefetch)
            "$OURS" --shuffle-dirents=yes --seed 1 --passthrough=no --prefetch-max=0 -q "$2" "$MNT"
            echo "$MNT" ;;
    esac
}
unmount_variant() {
    if [ "$1" != native ]; then
        if ! mountpoint -q "$MNT"; then
            echo "$1: the mount vanished during the workload" >&2
            exit 1
        fi
        fusermount3 -u "$MNT"
        while mountpoint -q "$MNT"; do sleep 0.05; done
        sleep 0.2
    fi
}

bench_tar() {
    local dir t0 t1
    warm "$WORK/small"
    dir=$(mount_variant "$1" "$WORK/small")
    t0=$(now)
    (cd "$dir" && tar -cf - . | cat >/dev/null && find . -type f -print0 | xargs -0 cat >/dev/null)
    t1=$(now)
    unmount_variant "$1"
    echo "$t1 - $t0" | bc
}

bench_make() {
    local dir t0 t1
    rm -f "$WORK"/csrc/*.o
    warm "$WORK/csrc"
    dir=$(mount_variant "$1" "$WORK/csrc")
    t0=$(now)
    make -s -j2 -C "$dir" >/dev/null
    t1=$(now)
    unmount_variant "$1"
    echo "$t1 - $t0" | bc
}

# bench_io VARIANT -> "write_MBps read_MBps"
bench_io() {
    local dir t0 t1 t2
    rm -f "$WORK/io/big"
    dir=$(mount_variant "$1" "$WORK/io")
    t0=$(now)
    dd if=/dev/zero of="$dir/big" bs=1M count="$SIZE_MB" status=none
    t1=$(now)
    dd if="$dir/big" of=/dev/null bs=1M status=none
    t2=$(now)
    unmount_variant "$1"
    echo "$SIZE_MB / ($t1 - $t0)" | bc -l | xargs printf '%.0f '
    echo "$SIZE_MB / ($t2 - $t1)" | bc -l | xargs printf '%.0f\n'
}

VARIANTS=${VARIANTS:-native debian ours ours-noopen}
declare -A TAR MAKE IO
# Warm-up: gcc, make and tar into the page cache, so the first variant pays no extra.
bench_make native >/dev/null
bench_tar native >/dev/null
# Repetitions outermost, variants innermost: every variant runs under the same
# conditions (the VM's background noise drifts over minutes).
for ((r = 0; r < REPS; r++)); do
    for v in $VARIANTS; do
        TAR[$v]+="$(bench_tar "$v") "
        MAKE[$v]+="$(bench_make "$v") "
        IO[$v]+="$(bench_io "$v" | tr ' ' ,) "
    done
done
declare -A WR RD
for v in $VARIANTS; do
    TAR[$v]=$(echo "${TAR[$v]}" | tr ' ' '\n' | grep . | median)
    MAKE[$v]=$(echo "${MAKE[$v]}" | tr ' ' '\n' | grep . | median)
    WR[$v]=$(echo "${IO[$v]}" | tr ' ' '\n' | grep . | cut -d, -f1 | median)
    RD[$v]=$(echo "${IO[$v]}" | tr ' ' '\n' | grep . | cut -d, -f2 | median)
done

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
echo "kernel $(uname -r), $(nproc) cores; FILES=$FILES CFILES=$CFILES SIZE_MB=$SIZE_MB REPS=$REPS (medians)"
echo
echo "| variant | (a) tar+cat s | vs native | (b) make -j2 s | vs native | (c) write MB/s | % native | (c) read MB/s | % native |"
echo "|---|---|---|---|---|---|---|---|---|"
for v in $VARIANTS; do
    printf '| %s | %.2f | %sx | %.2f | %sx | %s | %s%% | %s | %s%% |\n' "$v" \
        "${TAR[$v]}" "$(ratio "${TAR[$v]}" "${TAR[native]}")" \
        "${MAKE[$v]}" "$(ratio "${MAKE[$v]}" "${MAKE[native]}")" \
        "${WR[$v]}" "$(echo "100 * ${WR[$v]} / ${WR[native]}" | bc)" \
        "${RD[$v]}" "$(echo "100 * ${RD[$v]} / ${RD[native]}" | bc)"
done
