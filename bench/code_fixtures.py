#!/usr/bin/env python3
"""Fixtures for the code-flow scenarios of bench/tokens.sh: single-use authorization codes
and refresh tokens, written straight into the server's SQLite database (the benchmark
measures the token endpoint, not the consent page), and one fixture line per credential
(`value<TAB>` : no DPoP proof) for bench/token.lua.

Rows are what Patron itself stores (src/oauth/split_token.rs): each credential is
`<id>.<secret>` with a time-sortable id as the key and the SHA-256 (hex) of the secret; the
code's S256 PKCE challenge of the shared verifier; the grants as a JSON object.
"""
import argparse
import base64
import hashlib
import json
import secrets
import sqlite3
import time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--owner", required=True)
    p.add_argument("--resource", required=True)
    p.add_argument("--scopes", required=True)
    p.add_argument("--redirect-uri", required=True)
    p.add_argument("--verifier", required=True)
    p.add_argument("--kind", choices=["code", "refresh"], required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    now = int(time.time())
    grants = json.dumps({a.resource: a.scopes}, separators=(",", ":"))
    challenge = b64(hashlib.sha256(a.verifier.encode()).digest())
    db = sqlite3.connect(a.db, timeout=30)
    db.execute("PRAGMA busy_timeout = 30000")
    with db, open(a.out, "w") as out:
        # The consent a refresh checks, as the consent page records it.
        db.execute(
            "INSERT INTO consents (owner_id, client_id, grants, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner_id, client_id) DO NOTHING",
            (a.owner, a.client_id, grants, now, now),
        )
        family = "fam_bench_" + secrets.token_hex(8)
        if a.kind == "refresh":
            db.execute(
                "INSERT INTO refresh_families (family_id, client_id, owner_id, grants, dpop_jkt, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, NULL, ?, ?)",
                (family, a.client_id, a.owner, grants, now, now + 86400),
            )
        rows = []
        millis = int(time.time() * 1000) & 0xFFFFFFFFFFFF
        prefix = "pac_" if a.kind == "code" else "prt_"
        for _ in range(a.count):
            ident = f"{prefix}{millis:012x}{b64(secrets.token_bytes(12))}"
            secret = b64(secrets.token_bytes(32))
            digest = hashlib.sha256(secret.encode()).hexdigest()
            if a.kind == "code":
                rows.append((ident, digest, a.client_id, a.owner, a.redirect_uri, challenge, grants, now, now + 600))
            else:
                rows.append((ident, digest, family, now, now + 86400))
            out.write(f"{ident}.{secret}\t\n")
        if a.kind == "code":
            db.executemany(
                "INSERT INTO authorization_codes (code_id, secret_hash, client_id, owner_id, "
                "redirect_uri, code_challenge, grants, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        else:
            db.executemany(
                "INSERT INTO refresh_tokens (token_id, secret_hash, family_id, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )


if __name__ == "__main__":
    main()
