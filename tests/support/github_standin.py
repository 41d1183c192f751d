#!/usr/bin/env python3
"""A stand-in for GitHub's OAuth web flow and the two REST endpoints Patron reads.

Usage: python3 tests/support/github_standin.py [PORT_FILE]

Binds 127.0.0.1 on a free port and writes the port to PORT_FILE (or prints it as the first
line on stdout), then serves until killed:

  GET  /login/oauth/authorize     302 to redirect_uri?code=...&state=...; the user is picked
                                  by `login_hint` (default `octocat`)
  POST /login/oauth/access_token  form: client_id, client_secret, code, redirect_uri,
                                  code_verifier; JSON token or {"error": ...} with status 200
  GET  /user, GET /user/emails    with `Authorization: Bearer <token>`

Client `test-client` / `test-secret`. Users: `octocat` (id 583231, primary verified address)
and `unverified` (id 9001, primary address not verified). Standard library only.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import sys
import threading
import urllib.parse

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"

USERS = {
    "octocat": {
        "user": {"login": "octocat", "id": 583231, "name": "The Octocat", "type": "User"},
        "emails": [
            {"email": "octocat@example.com", "primary": True, "verified": True,
             "visibility": "public"},
            {"email": "octo-old@example.com", "primary": False, "verified": True,
             "visibility": None},
        ],
    },
    "unverified": {
        "user": {"login": "unverified", "id": 9001, "name": None, "type": "User"},
        "emails": [
            {"email": "unverified@example.com", "primary": True, "verified": False,
             "visibility": "private"},
            {"email": "other@example.com", "primary": False, "verified": True,
             "visibility": None},
        ],
    },
}
DEFAULT_USER = "octocat"

LOCK = threading.Lock()
CODES = {}   # code -> {"user", "challenge", "method", "redirect_uri", "used"}
TOKENS = {}  # access token -> user name


def b64url_sha256(text):
    digest = hashlib.sha256(text.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "github-standin/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read only their own output
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/login/oauth/authorize":
            self.authorize(urllib.parse.parse_qs(url.query))
        elif url.path in ("/user", "/user/emails"):
            self.api(url.path)
        else:
            self.send_json(404, {"message": "Not Found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        if url.path == "/login/oauth/access_token":
            self.access_token(urllib.parse.parse_qs(body))
        else:
            self.send_json(404, {"message": "Not Found"})

    def authorize(self, query):
        one = lambda k: (query.get(k) or [""])[0]
        redirect_uri = one("redirect_uri")
        if one("client_id") != CLIENT_ID or not redirect_uri:
            self.send_json(400, {"error": "invalid_request"})
            return
        user = one("login_hint") or DEFAULT_USER
        if user not in USERS:
            self.send_json(400, {"error": "unknown login_hint"})
            return
        # The code names the user, which helps when reading a failing test.
        code = f"{user}.{secrets.token_urlsafe(16)}"
        with LOCK:
            CODES[code] = {
                "user": user,
                "challenge": one("code_challenge"),
                "method": one("code_challenge_method"),
                "redirect_uri": redirect_uri,
                "used": False,
            }
        sep = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + sep + urllib.parse.urlencode({"code": code, "state": one("state")})
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def access_token(self, form):
        one = lambda k: (form.get(k) or [""])[0]
        if "application/json" not in (self.headers.get("Accept") or ""):
            self.send_json(406, {"error": "standin_wants_accept_json"})
            return
        if not (hmac.compare_digest(one("client_id"), CLIENT_ID)
                and hmac.compare_digest(one("client_secret"), CLIENT_SECRET)):
            self.send_json(200, {"error": "incorrect_client_credentials"})
            return
        with LOCK:
            entry = CODES.get(one("code"))
            if entry is None or entry["used"]:
                error = "bad_verification_code"
            else:
                # Like GitHub, a code is spent by its first redemption, good or bad.
                entry["used"] = True
                error = None
                if entry["redirect_uri"] != one("redirect_uri"):
                    error = "redirect_uri_mismatch"
                elif entry["challenge"] or one("code_verifier"):
                    if (entry["method"] != "S256"
                            or not hmac.compare_digest(b64url_sha256(one("code_verifier")),
                                                       entry["challenge"])):
                        error = "bad_verification_code"
            if error is not None:
                self.send_json(200, {"error": error,
                                     "error_description": "The code passed is incorrect or expired."})
                return
            token = "gho_" + secrets.token_urlsafe(24)
            TOKENS[token] = entry["user"]
        self.send_json(200, {"access_token": token, "token_type": "bearer",
                             "scope": "read:user,user:email"})

    def api(self, path):
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        with LOCK:
            user = TOKENS.get(token) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            self.send_json(401, {"message": "Bad credentials"})
            return
        if not self.headers.get("User-Agent"):
            self.send_json(403, {"message": "Request forbidden: a User-Agent is required"})
            return
        record = USERS[user]
        self.send_json(200, record["user"] if path == "/user" else record["emails"])


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if len(sys.argv) > 1:
        tmp = sys.argv[1] + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        # Rename so a reader never sees a half-written file.
        os.replace(tmp, sys.argv[1])
    else:
        print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
