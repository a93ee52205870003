#!/bin/sh
# Gives each scaled worker a data dir of its own inside the one volume mounted at
# $FRICTIONWATCH_DATA_DIR, then runs the command ("frictionwatch worker") in this process.
#
# `docker compose up --scale worker=N` cannot give each replica its own named volume, and a
# data dir shared by two workers would mix their RocksDB tables and model checkpoints. So each
# worker takes the first slot, worker-1, worker-2, ..., whose lock no live process holds:
# the lock stays open on file descriptor 9 through `exec`, so it lasts exactly as long as
# the worker and is released when it exits or is killed (SIGKILL included). A slot keeps
# what its last worker wrote, so `up --build`, restarts and `down`/`up` start from it; only
# `down --volumes` empties it. Whichever partitions a worker is given, Faust brings their
# tables up to date from the changelog topics, starting at the offsets kept in the slot.
set -eu

root="${FRICTIONWATCH_DATA_DIR:?FRICTIONWATCH_DATA_DIR names the volume to take a slot in}"
# Far more than partitions: a worker beyond the partition count gets none to work on.
slots=64

i=1
while [ "$i" -le "$slots" ]; do
    dir="$root/worker-$i"
    mkdir -p "$dir"
    exec 9>>"$dir/.lock"
    if flock --nonblock 9; then
        FRICTIONWATCH_DATA_DIR="$dir"
        export FRICTIONWATCH_DATA_DIR
        echo "claim-data-dir: using $dir" >&2
        exec "$@"
    fi
    i=$((i + 1))
done
echo "claim-data-dir: all $slots data dirs under $root are in use" >&2
exit 1
