#!/usr/bin/env bash
# The whole test suite, from a fresh machine: checks the toolchain, installs what the tests
# need, then runs every test of the workspace. Fails loudly (never skips) when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "tests/run.sh: '$1' is required but not installed: $2" >&2; exit 1; }; }
need cargo "install Rust with rustup"

need python3 "install Python 3"
# Real servers and clients the integration tests use: Prosody (XMPP) and slixmpp (a person's
# Jabber client). The tests start and stop their own throwaway servers on 127.0.0.1.
export DEBIAN_FRONTEND=noninteractive
if ! command -v prosody >/dev/null || ! dpkg -s lua-unbound >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends prosody lua-unbound openssl >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prosody lua-unbound openssl >/dev/null; }
fi
need prosody "apt-get install prosody lua-unbound"
# Postfix (SMTP) + Dovecot (IMAP, LMTP) for the email transport; debconf is pre-seeded so the
# install asks nothing.
if ! command -v postfix >/dev/null || ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/lmtp ] || [ ! -x /usr/lib/dovecot/imap ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends postfix dovecot-imapd dovecot-lmtpd openssl >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends postfix dovecot-imapd dovecot-lmtpd openssl >/dev/null; }
fi
need postfix "apt-get install postfix"
need dovecot "apt-get install dovecot-imapd dovecot-lmtpd"
python3 -c 'import slixmpp' 2>/dev/null || python3 -m pip install -q slixmpp
python3 -c 'import slixmpp' || { echo "tests/run.sh: slixmpp could not be installed" >&2; exit 1; }
# tests/netfaults.rs partitions a private network namespace with `ip netns` / `ip rule`
# (iproute2; run as root).
if ! command -v ip >/dev/null; then
  apt-get install -y -qq --no-install-recommends iproute2 >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 >/dev/null; }
fi
need ip "apt-get install iproute2"
# The dashboard's browser test (tests/operator.rs): Debian's Chromium, driven headless by
# playwright-core from npm (Playwright's own browser download is not used).
if ! command -v chromium >/dev/null; then
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi
need chromium "apt-get install chromium"
need node "install Node.js 20 or newer with npm"
need npm "install npm"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) \
  || { echo "tests/run.sh: 'npm ci' in tests/browser failed" >&2; exit 1; }
[ -f tests/browser/node_modules/playwright-core/package.json ] \
  || { echo "tests/run.sh: playwright-core is missing from tests/browser/node_modules" >&2; exit 1; }

# One build profile for everything (the dev profile in Cargo.toml).
cargo build --workspace --all-targets --locked

# Every test binary runs even when an earlier one fails (--no-fail-fast); the output is kept so
# the end of the run can list every failure (binary and test), which a long log would bury.
# --nocapture: the tests print what they measured ("waited 0.06 s for …"), passing or not.
log=$(mktemp -t lakitu-tests.XXXXXX)
started=$SECONDS
set +e
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" --nocapture 2>&1 \
  | tee "$log"
status=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - started))
# `Running tests/email.rs (target/debug/deps/email-…)` names the binary of the list of failed
# tests libtest prints at its end (`failures:` then one indented name a line); cargo's own
# `error: N targets failed:` list also catches a binary that crashed before it could report.
failures=$(awk '
  /^ *Running / { bin = $0; sub(/^ *Running /, "", bin) }
  /^ *Doc-tests / { bin = $0; sub(/^ */, "", bin) }
  listing && /^    [^ ]+$/ { sub(/^ +/, ""); print "  " bin ": " $0; next }
  { listing = ($0 == "failures:") }
' "$log")
targets=$(sed -n '/^error: [0-9]* targets\? failed:/,/^[^ ]/p' "$log" | grep '^ ' || true)
echo
echo "tests/run.sh: cargo test finished in $((elapsed / 60)) min $((elapsed % 60)) s (exit status $status)"
if [ "$status" -ne 0 ]; then
  echo "tests/run.sh: FAILED. Failing tests:"
  echo "${failures:-  (no failed test listed: see the failing binaries below)}"
  [ -n "$targets" ] && { echo "Failing test binaries:"; echo "$targets"; }
  echo "Full log: $log"
  exit "$status"
fi
rm -f "$log"
echo "tests/run.sh: every test passed"
