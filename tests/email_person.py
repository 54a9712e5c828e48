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
  reply-to SUBJECT SECRET TEXT WANT
                            press Reply on the newest mail whose subject starts with SUBJECT:
                            "Re: <subject>", TEXT and the secret on top, the mail quoted under
                            an "On … wrote:" line, a signature; wait for an answer holding WANT
                            and report its threading headers
  answer-inline SUBJECT SECRET BELOW TEXT WANT
                            press Reply on the newest mail whose subject starts with SUBJECT
                            and type TEXT under its quoted line holding BELOW (an inline
                            answer), the secret at the end; wait for an answer holding WANT
  html CLIENT SECRET TEXT   post TEXT as an HTML-only mail laid out as CLIENT (gmail, outlook)
                            writes it, one <div> per line; wait for "Posted"
  big SECRET MIB            post with an attachment of MIB MiB; wait for the answer
  help                      ask for help without the secret; wait for the answer
  unsafe-check USER         read every mail in USER's INBOX (password USER + "pw"); report how
                            many there are and any control or bidi character in a decoded
                            subject or text
"""
import email
import email.policy
import email.utils
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


def send(subject, body, login=("dave@example.test", "davepw"), html=None, headers=None,
         attach=None):
    m = EmailMessage()
    m["From"] = ME
    m["To"] = RELAY
    m["Subject"] = subject
    m["Message-ID"] = email.utils.make_msgid(domain="person.example.test")
    for k, v in (headers or {}).items():
        m[k] = v
    if html is not None:
        m.set_content(html, subtype="html")
    else:
        m.set_content(body)
    if attach is not None:
        m.add_attachment(attach, maintype="application", subtype="octet-stream",
                         filename="photo.raw")
    with smtplib.SMTP(HOST, SMTP_PORT, timeout=10) as s:
        s.login(*login)
        s.send_message(m)
    return m["Message-ID"]


def threading(msg, sent_id):
    """What a client threads on, checked against the mail the answer is for."""
    return {
        "in_reply_to": str(msg.get("In-Reply-To", "")),
        "references": str(msg.get("References", "")),
        "threaded": str(msg.get("In-Reply-To", "")) == sent_id
        and sent_id in str(msg.get("References", "")),
    }


def newest(subject_prefix):
    """The newest mail in dave's INBOX whose subject starts with `subject_prefix`."""
    with imaplib.IMAP4(HOST, IMAP_PORT, timeout=10) as im:
        im.login(ME, "davepw")
        im.select("INBOX")
        _, data = im.search(None, "ALL")
        for num in reversed(data[0].split()):
            _, got = im.fetch(num, "(BODY.PEEK[])")
            msg = email.message_from_bytes(got[0][1], policy=email.policy.default)
            if str(msg["Subject"]).startswith(subject_prefix):
                return msg
    sys.exit(f"no mail with a subject starting {subject_prefix!r}")


GMAIL = ('<div dir="ltr">{lines}</div><br><div class="gmail_quote"><div dir="ltr" '
         'class="gmail_attr">On Sun, Dec 6, 2026 at 11:00 PM &lt;<a href="mailto:carol@example.test">'
         'carol@example.test</a>&gt; wrote:<br></div><blockquote class="gmail_quote" '
         'style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);'
         'padding-left:1ex">Posted earlier.</blockquote></div>\n')
OUTLOOK = ('<html><head>\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
           '<style type="text/css" style="display:none;"> P {{margin-top:0;margin-bottom:0;}} '
           '</style>\n</head>\n<body dir="ltr">\n{lines}</body>\n</html>\n')


def html_lines(client, lines):
    if client == "gmail":
        return GMAIL.format(lines="".join(f"<div>{l}</div>" for l in lines))
    return OUTLOOK.format(lines="".join(
        '<div class="elementToProof" style="font-family: Aptos, Calibri, Helvetica, sans-serif; '
        f'font-size: 12pt; color: rgb(0, 0, 0);">\n{l}</div>\n' for l in lines))


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
    elif step == "reply-to":
        prefix, secret, text, want = args
        orig = newest(prefix)
        subject = str(orig["Subject"])
        quoted = "\n".join("> " + l for l in text_of(orig).splitlines())
        body = (f"{text} {secret}\n\nOn Sun, 6 Dec 2026 at 23:00, Relay <{RELAY}> wrote:\n"
                f"{quoted}\n\n-- \nDave\n")
        sent = send("Re: " + subject, body,
                    headers={"In-Reply-To": str(orig["Message-ID"]),
                             "References": str(orig["Message-ID"])})
        got = wait_for(lambda m: want in text_of(m))
        print(json.dumps({**describe(got), **threading(got, sent), "sent_subject": "Re: " + subject}))
    elif step == "answer-inline":
        prefix, secret, below, text, want = args
        orig = newest(prefix)
        subject = str(orig["Subject"])
        # As Thunderbird and mutt write an inline answer: the mail quoted, the answer typed
        # under the quoted line holding BELOW, the rest of the quote kept after it.
        lines = []
        for l in text_of(orig).splitlines():
            lines.append("> " + l)
            if below in l:
                lines += ["", text, ""]
        body = (f"On Sun, 6 Dec 2026 at 23:00, Relay <{RELAY}> wrote:\n" + "\n".join(lines)
                + f"\n\n{secret}\n")
        sent = send("Re: " + subject, body,
                    headers={"In-Reply-To": str(orig["Message-ID"]),
                             "References": str(orig["Message-ID"])})
        got = wait_for(lambda m: want in text_of(m))
        print(json.dumps({**describe(got), **threading(got, sent)}))
    elif step == "html":
        client, secret, text = args
        lines = ["post #html"] + text.split("|") + ["", secret]
        sent = send("", "", html=html_lines(client, lines))
        got = wait_for(lambda m: text_of(m).startswith("Posted") or "Not posted" in text_of(m)
                       or "Refused" in text_of(m) or "Send `help`" in text_of(m))
        print(json.dumps({**describe(got), **threading(got, sent)}))
    elif step == "big":
        secret, mib = args
        send(f"post #big {secret}", "a photo\n", attach=b"\x89" * (int(mib) << 20))
        got = wait_for(lambda m: "too large" in text_of(m))
        print(json.dumps(describe(got)))
    elif step == "help":
        sent = send("help", "what can I do?\n")
        got = wait_for(lambda m: "Commands:" in text_of(m))
        print(json.dumps({**describe(got), **threading(got, sent)}))
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
