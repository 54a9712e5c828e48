#!/usr/bin/env bash
# Stop or start only the Postfix (SMTP) of a mail pair that mail.sh set up in DIR, leaving
# Dovecot (IMAP) running: the email transport's fault test takes the SMTP server away while
# posts are queued. Uses Postfix's own config and pid file in DIR, never a process name.
#
# usage: mail-smtp.sh DIR stop|start
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DIR stop|start" >&2; exit 2; }
D=$1; P=$D/postfix-etc
[ -f "$P/main.cf" ] || { echo "mail-smtp.sh: no postfix config in $D (run mail.sh first)" >&2; exit 1; }
port=$(awk '/ inet /{split($1, a, ":"); print a[2]; exit}' "$P/master.cf")
open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
case $2 in
  stop)
    pidf=$D/postfix-spool/pid/master.pid
    if [ -s "$pidf" ]; then
      pid=$(tr -d ' ' < "$pidf")
      postfix -c "$P" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    for _ in $(seq 1 100); do open || { echo "smtp stopped (port $port)"; exit 0; }; sleep 0.05; done
    echo "mail-smtp.sh: port $port still answers" >&2; exit 1 ;;
  start)
    postfix -c "$P" start >/dev/null 2>&1 || { echo "mail-smtp.sh: postfix did not start" >&2; tail -15 "$D/postfix.log" >&2; exit 1; }
    for _ in $(seq 1 200); do open && { echo "smtp up (port $port)"; exit 0; }; sleep 0.05; done
    echo "mail-smtp.sh: port $port did not open within 10 s" >&2; exit 1 ;;
  *) echo "usage: $0 DIR stop|start" >&2; exit 2 ;;
esac
