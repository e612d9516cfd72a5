#!/usr/bin/env bash
# run-guarded.sh CMD ARGS...: runs CMD with stdin from /dev/null, and stops it
# (SIGTERM, then SIGKILL to the whole process group after up to 10 s) when this
# script's own stdin reaches EOF, i.e. when the test process that holds the
# other end of the pipe dies, even by SIGKILL. Start it as a process-group
# leader. Exits with CMD's status. Used by test/support for Velero, which has no
# such watch of its own.
set -u
# Background jobs of a non-interactive shell get /dev/null as stdin unless it is
# redirected explicitly, so keep our stdin on fd 3 for the watcher.
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
{
  cat <&3 >/dev/null
  kill -TERM "$child" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
  # Then the whole process group (the harness starts this script as a group
  # leader): CMD if still there, the plugin processes it started, and us.
  kill -KILL 0
} &
watcher=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break
done
kill "$watcher" 2>/dev/null
exit "$rc"
