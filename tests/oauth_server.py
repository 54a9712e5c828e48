#!/usr/bin/env python3
"""A minimal OAuth2 authorisation server for the mail tests, on 127.0.0.1 only.

    oauth_server.py PORT LIFETIME_SECS

- POST /token with `username=<login>`: a new random access token for that login, valid for
  LIFETIME_SECS (what a token helper such as oama or mutt_oauth2.py fetches for a mail client);
  the body of the answer is the bare token.
- POST /introspect with `token=<token>` (RFC 7662, as Dovecot's oauth2 passdb asks in
  `introspection_mode = post`): {"active": true, "username": <login>} while the token is valid,
  {"active": false} otherwise.
- GET /stats: {"issued": n, "accepted": n, "refused": n}.

Prints "ready" once listening; runs until killed.
"""
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
LIFETIME = float(sys.argv[2])
TOKENS = {}
STATS = {"issued": 0, "accepted": 0, "refused": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, body, kind="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 65536)).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                self.answer(200, json.dumps(STATS))
        else:
            self.answer(404, "{}")

    def do_POST(self):
        form = self.form()
        if self.path == "/token":
            user = form.get("username", "")
            if not user:
                self.answer(400, "no username", "text/plain")
                return
            token = secrets.token_urlsafe(24)
            with LOCK:
                TOKENS[token] = (user, time.time() + LIFETIME)
                STATS["issued"] += 1
            self.answer(200, token, "text/plain")
        elif self.path == "/introspect":
            with LOCK:
                user, until = TOKENS.get(form.get("token", ""), ("", 0))
                active = time.time() < until
                STATS["accepted" if active else "refused"] += 1
            body = {"active": True, "username": user} if active else {"active": False}
            self.answer(200, json.dumps(body))
        else:
            self.answer(404, "{}")


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
