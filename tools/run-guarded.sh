#!/usr/bin/env bash
# run-guarded.sh CMD ARGS...: runs CMD with stdin from /dev/null, and stops it
# (SIGTERM, then SIGKILL after 10 s) when this script's own stdin reaches EOF,
# i.e. when the test process that holds the other end of the pipe dies, even by
# SIGKILL. Exits with CMD's status. Used by test/support for Velero, which has
# no such watch of its own.
set -u
# Background jobs of a non-interactive shell get /dev/null as stdin unless it is
# redirected explicitly, so keep our stdin on fd 3 for the watcher.
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
{
  cat <&3 >/dev/null
  kill -TERM "$child" 2>/dev/null || exit 0
  for _ in $(seq 1 100); do kill -0 "$child" 2>/dev/null || exit 0; sleep 0.1; done
  kill -KILL "$child" 2>/dev/null
} &
watcher=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break
done
kill "$watcher" 2>/dev/null
exit "$rc"
