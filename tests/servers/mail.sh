#!/usr/bin/env bash
# A throwaway mail pair on loopback for the email transport's tests and benchmark (no systemd):
# Postfix (SMTP, AUTH PLAIN through Dovecot SASL, STARTTLS optional) -> LMTP -> Dovecot (maildir,
# IMAP with IDLE, STARTTLS optional), domain example.test, users alice/bob/carol/dave with the
# password <name>pw. Everything (config, spool, maildirs, logs, pid files, self-signed cert) lives
# under DIR, so runs on different ports and directories never collide.
#
# usage: mail.sh DIR SMTP_PORT IMAP_PORT [LMTP_PORT AUTH_PORT [SMTPS_PORT IMAPS_PORT]]
#   LMTP_PORT/AUTH_PORT default to IMAP_PORT+1/+2; SMTPS/IMAPS (implicit TLS) only when given.
#   With OAUTH_INTROSPECTION_URL set, Dovecot (and Postfix through it) also accepts OAuth2
#   access tokens (SASL XOAUTH2 and OAUTHBEARER), checked at that RFC 7662 introspection
#   endpoint (tests/oauth_server.py), besides the passwords.
# Stop with mail-down.sh DIR. Exits non-zero with the log tail when something does not come up.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { echo "usage: $0 DIR SMTP_PORT IMAP_PORT [LMTP_PORT AUTH_PORT [SMTPS_PORT IMAPS_PORT]]" >&2; exit 2; }
D=$1; SMTP_PORT=$2; IMAP_PORT=$3
LMTP_PORT=${4:-$((IMAP_PORT + 1))}; AUTH_PORT=${5:-$((IMAP_PORT + 2))}
SMTPS_PORT=${6:-}; IMAPS_PORT=${7:-}
USERS="alice bob carol dave"

fail() { echo "mail.sh: $*" >&2; for f in "$D/postfix.log" "$D/dovecot.log"; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -15 "$f" >&2; }; done; exit 1; }

have_servers() { command -v postfix >/dev/null && command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/lmtp ] && [ -x /usr/lib/dovecot/imap ]; }
if ! have_servers; then
  # Debian packages; debconf pre-seeded so the Postfix install asks nothing. A stale package
  # index gives 404s, hence the second try after apt-get update.
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
  PKGS="postfix dovecot-imapd dovecot-lmtpd openssl"
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1; } \
    || true
  have_servers || { echo "mail.sh: postfix/dovecot missing and could not be installed (apt-get install $PKGS)" >&2; exit 1; }
fi

# A previous instance in DIR is stopped first, so the script can be rerun.
[ -d "$D" ] && "$HERE/mail-down.sh" "$D" >/dev/null 2>&1 || true
mkdir -p "$D"
# Dovecot's LMTP and IMAP processes run as uid 65534 and reach the maildirs by absolute path:
# a 0700 temp dir owned by root would lock them out.
chmod 755 "$D"
rm -rf "$D/postfix-etc" "$D/postfix-spool" "$D/postfix-data" "$D/vmail" "$D/dovecot-run" "$D/dovecot-state"
P=$D/postfix-etc
mkdir -p "$P" "$D/vmail" "$D/dovecot-run" "$D/dovecot-state" "$D/postfix-spool" "$D/postfix-data"
chown postfix: "$D/postfix-data"   # master.lock is created as the postfix user
chown nobody:nogroup "$D/vmail"    # mail uid 65534 (Dovecot refuses uid 0 for mail)
[ -s "$D/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,DNS:mail.example.test,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null || fail "openssl could not make the certificate"

: > "$D/users"
for u in $USERS; do
  echo "$u@example.test:{PLAIN}${u}pw:65534:65534::$D/vmail/example.test/$u::" >> "$D/users"
done

# Dovecot's built-in imaps listener binds 993 unless told otherwise: port 0 turns it off, so
# two test servers (or two suites on one machine) never fight over it.
TLS_LISTENER="inet_listener imaps {
    port = 0
  }"
[ -n "$IMAPS_PORT" ] && TLS_LISTENER="inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }"
OAUTH_MECHANISMS=""; OAUTH_PASSDB=""
if [ -n "${OAUTH_INTROSPECTION_URL:-}" ]; then
  OAUTH_MECHANISMS=" xoauth2 oauthbearer"
  OAUTH_PASSDB="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $D/dovecot-oauth2.conf.ext
}"
  cat > "$D/dovecot-oauth2.conf.ext" <<CONF
introspection_mode = post
introspection_url = $OAUTH_INTROSPECTION_URL
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
CONF
fi
cat > "$D/dovecot.conf" <<CONF
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $D/dovecot-run
state_dir = $D/dovecot-state
log_path = $D/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
ssl = yes
ssl_cert = <$D/cert.pem
ssl_key = <$D/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login$OAUTH_MECHANISMS
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/users
  mechanisms = plain login
}
$OAUTH_PASSDB
userdb {
  driver = passwd-file
  args = username_format=%u $D/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  $TLS_LISTENER
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
service auth {
  inet_listener auth-postfix {
    address = 127.0.0.1
    port = $AUTH_PORT
  }
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
CONF

cat > "$P/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $D/postfix-spool
data_directory = $D/postfix-data
# No syslog here: Postfix logs to a file of its own.
maillog_file_prefixes = /var, /dev/stdout, /tmp, $D
maillog_file = $D/postfix.log
myhostname = mail.example.test
mydomain = example.test
myorigin = \$mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
biff = no
virtual_mailbox_domains = example.test
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
# Retry deferred mail within seconds, not Postfix's default minutes: a delivery that failed
# while a test restarted Dovecot (LMTP) must not outlast the test's wait for it.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$AUTH_PORT
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_cert_file = $D/cert.pem
smtpd_tls_key_file = $D/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = no
smtp_tls_security_level = none
CONF
SMTPS_LINE=""
[ -n "$SMTPS_PORT" ] && SMTPS_LINE="127.0.0.1:$SMTPS_PORT inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes"
# chroot column n everywhere: Debian's default y needs copies of /etc under the spool that only
# its init script makes.
cat > "$P/master.cf" <<CONF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
$SMTPS_LINE
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF

dovecot -c "$D/dovecot.conf" 2>>"$D/dovecot.log" || fail "dovecot did not start"
# Postfix prints errors only to a tty (else syslog); its log file is shown on failure.
postfix -c "$P" start >/dev/null 2>&1 || fail "postfix did not start"

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
for p in $IMAP_PORT $LMTP_PORT $AUTH_PORT $SMTP_PORT $SMTPS_PORT $IMAPS_PORT; do
  wait_port "$p" || fail "port $p did not open within 10 s"
done
echo "mail up: SMTP 127.0.0.1:$SMTP_PORT IMAP 127.0.0.1:$IMAP_PORT (STARTTLS optional)${SMTPS_PORT:+ SMTPS $SMTPS_PORT}${IMAPS_PORT:+ IMAPS $IMAPS_PORT}, users $USERS @example.test, dir $D"
