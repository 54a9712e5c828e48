#!/usr/bin/env bash
# Stop a Prosody started by tests/servers/prosody.sh DIR, by its pid file (never by name).
#   tests/servers/prosody-down.sh DIR
set -uo pipefail
DIR=${1:?usage: prosody-down.sh DIR}
PID=""
for f in "$DIR/launcher.pid" "$DIR/prosody.pid"; do
  if [ -s "$f" ]; then PID=$(cat "$f"); break; fi
done
[ -n "$PID" ] || { echo "no prosody pid file in $DIR"; exit 0; }
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null
fi
rm -f "$DIR/launcher.pid" "$DIR/prosody.pid"
echo "prosody in $DIR stopped"
