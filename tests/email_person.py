#!/usr/bin/env python3
"""A person with a plain mail client (smtplib + imaplib), driven step by step by tests/email.rs.

The person is dave@example.test (password davepw); the relay's mailbox is carol@example.test.
Every step sends at most one mail and then waits, bounded, for the answer in dave's INBOX; each
mail it reads is marked seen, so a later step only looks at newer mail. It prints one JSON
document on success and exits non-zero with a reason otherwise.

usage: email_person.py SMTP_PORT IMAP_PORT STEP [ARGS...]
  post SECRET TEXT          post by mail with the proof; wait for the relay's "Posted" answer
  follow SECRET TOPIC       follow a topic by mail; wait for the confirmation
  digest TEXT...            wait for digest mails until every TEXT was listed in one
  forged TEXT               write as dave, logged in as alice, without the proof; wait for
                            the refusal
  flood N                   send N commands from bob (a stranger) and N as dave without the
                            proof (logged in as alice); wait for nothing
  unsafe-check USER         read every mail in USER's INBOX (password USER + "pw"); report how
                            many there are and any control or bidi character in a decoded
                            subject or text
"""
import email
import email.policy
import imaplib
import json
import smtplib
import sys
import time
from email.message import EmailMessage

HOST = "127.0.0.1"
ME = "dave@example.test"
RELAY = "carol@example.test"
WAIT_SECS = 90


def send(subject, body, login=("dave@example.test", "davepw")):
    m = EmailMessage()
    m["From"] = ME
    m["To"] = RELAY
    m["Subject"] = subject
    m.set_content(body)
    with smtplib.SMTP(HOST, SMTP_PORT, timeout=10) as s:
        s.login(*login)
        s.send_message(m)


def text_of(msg):
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def wait_for(matches):
    """Read unseen mail in dave's INBOX until `matches(msg)` holds for one; returns it."""
    deadline = time.time() + WAIT_SECS
    with imaplib.IMAP4(HOST, IMAP_PORT, timeout=10) as im:
        im.login(ME, "davepw")
        while time.time() < deadline:
            im.select("INBOX")
            _, data = im.search(None, "UNSEEN")
            for num in data[0].split():
                _, got = im.fetch(num, "(RFC822)")  # marks it \Seen
                msg = email.message_from_bytes(got[0][1], policy=email.policy.default)
                if matches(msg):
                    return msg
            time.sleep(0.5)
    sys.exit(f"no matching mail in {WAIT_SECS} s")


def describe(msg):
    return {
        "subject": str(msg["Subject"]),
        "from": str(msg["From"]),
        "auto_submitted": str(msg.get("Auto-Submitted", "")),
        "text": text_of(msg),
    }


def main():
    step, args = sys.argv[3], sys.argv[4:]
    if step == "post":
        secret, text = args
        send(f"post #byperson {secret}", text + "\n\n-- \nDave\n")
        got = wait_for(lambda m: text_of(m).startswith("Posted"))
        print(json.dumps(describe(got)))
    elif step == "follow":
        secret, topic = args
        send(f"follow #{topic}", f"{secret}\n")
        got = wait_for(lambda m: "You will receive" in text_of(m))
        print(json.dumps(describe(got)))
    elif step == "digest":
        want = set(args)
        digests = []
        while want:
            got = wait_for(lambda m: str(m["Subject"]).startswith("Lakitu digest"))
            digests.append(describe(got))
            want = {t for t in want if t not in digests[-1]["text"]}
        print(json.dumps(digests))
    elif step == "forged":
        (text,) = args
        send("post #byperson", text + "\n", login=("alice@example.test", "alicepw"))
        got = wait_for(lambda m: "Refused" in text_of(m))
        print(json.dumps(describe(got)))
    elif step == "flood":
        (n,) = args
        for i in range(int(n)):
            m = EmailMessage()
            m["From"] = "bob@example.test"
            m["To"] = RELAY
            m["Subject"] = "post #flood"
            m.set_content(f"stranger {i}\n")
            with smtplib.SMTP(HOST, SMTP_PORT, timeout=10) as s:
                s.login("bob@example.test", "bobpw")
                s.send_message(m)
            send("post #flood", f"forged owner {i}\n", login=("alice@example.test", "alicepw"))
        print(json.dumps({"sent": 2 * int(n)}))
    elif step == "unsafe-check":
        (user,) = args
        found, count = [], 0
        with imaplib.IMAP4(HOST, IMAP_PORT, timeout=10) as im:
            im.login(f"{user}@example.test", f"{user}pw")
            im.select("INBOX")
            _, data = im.search(None, "ALL")
            for num in data[0].split():
                _, got = im.fetch(num, "(BODY.PEEK[])")
                msg = email.message_from_bytes(got[0][1], policy=email.policy.default)
                count += 1
                for c in str(msg["Subject"]) + text_of(msg):
                    o = ord(c)
                    if (o < 0x20 and c not in "\n\t\r") or 0x7F <= o <= 0x9F \
                            or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
                        found.append(hex(o))
        print(json.dumps({"mails": count, "unsafe": found}))
    else:
        sys.exit(f"unknown step {step}")


SMTP_PORT = int(sys.argv[1])
IMAP_PORT = int(sys.argv[2])
main()
