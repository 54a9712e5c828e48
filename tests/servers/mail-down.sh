#!/usr/bin/env bash
# Stop the Postfix + Dovecot that mail.sh started in DIR, by their own pid files only (never by
# name: other instances may be running). Leaves DIR in place.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
D=$1
wait_gone() { for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done; kill -KILL "$1" 2>/dev/null; }
if [ -s "$D/postfix-spool/pid/master.pid" ]; then
  pid=$(tr -d ' ' < "$D/postfix-spool/pid/master.pid")
  postfix -c "$D/postfix-etc" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
  wait_gone "$pid"
fi
if [ -s "$D/dovecot-run/master.pid" ]; then
  pid=$(cat "$D/dovecot-run/master.pid")
  kill -TERM "$pid" 2>/dev/null
  wait_gone "$pid"
fi
echo "mail stopped ($D)"
