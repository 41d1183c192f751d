"""An MCP server built with the MCP Python SDK (`mcp` on PyPI) that accepts Patron's tokens.

Usage: server.py ISSUER REQUIRED_SCOPE VERIFICATION_LOG

It listens on 127.0.0.1 (a free port), serves Streamable HTTP at /mcp, and prints one line,
`{"url": "http://127.0.0.1:PORT/mcp"}`, once it is listening. Its resource URL is that URL:
the Patron skill audience its tokens must carry. Through the SDK's `AuthSettings` it answers
an unauthenticated request with 401 and `WWW-Authenticate: Bearer resource_metadata=...`, and
publishes RFC 9728 protected resource metadata naming ISSUER as its authorization server and
REQUIRED_SCOPE as its scope (which the SDK also requires of every token, 403 otherwise).

Tokens are checked by `PatronVerifier`, an SDK `TokenVerifier`: an ES256 JWT of type at+jwt
signed by a key of ISSUER's JWKS (its `jwks_uri`, read from ISSUER's RFC 8414 metadata), with
`iss` = ISSUER, `aud` = the resource URL, and an `exp` in the future. Each decision is
appended to VERIFICATION_LOG as one JSON line, for the test to read.

Tools: `echo(text)` and `whoami()` (the verified token's claims, as JSON text).
"""

import json
import socket
import sys
import urllib.request

import anyio
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer


class PatronVerifier:
    """Verifies Patron access tokens against its JWKS (RFC 9068 profile)."""

    def __init__(self, issuer: str, audience: str, log_path: str):
        with urllib.request.urlopen(f"{issuer}/.well-known/oauth-authorization-server") as r:
            metadata = json.load(r)
        if metadata["issuer"] != issuer:
            raise SystemExit(f"metadata issuer {metadata['issuer']!r} is not {issuer!r}")
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=True)
        self.log_path = log_path

    def _log(self, entry: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def _verify(self, token: str) -> dict:
        header = jwt.get_unverified_header(token)
        if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise jwt.InvalidTokenError(f"typ is {header.get('typ')!r}, not at+jwt")
        key = self.jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "client_id"]},
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await anyio.to_thread.run_sync(self._verify, token)
        except jwt.PyJWTError as e:
            self._log({"ok": False, "error": type(e).__name__, "detail": str(e)})
            return None
        self._log({"ok": True, "jti": claims.get("jti"), "scope": claims.get("scope")})
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=claims.get("scope", "").split(),
            expires_at=claims["exp"],
            resource=claims["aud"],
            subject=claims["sub"],
            claims=claims,
        )


def main() -> None:
    issuer, required_scope, log_path = sys.argv[1:4]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"

    server = MCPServer(
        "Patron notes",
        token_verifier=PatronVerifier(issuer, url, log_path),
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=url,
            required_scopes=[required_scope],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def echo(text: str) -> str:
        """Echoes text."""
        return f"echo: {text}"

    @server.tool()
    def whoami() -> str:
        """The verified token's claims."""
        token = get_access_token()
        c = token.claims if token and token.claims else {}
        keys = ("iss", "sub", "aud", "client_id", "scope", "jti", "exp")
        return json.dumps({k: c.get(k) for k in keys})

    app = server.streamable_http_app(host="127.0.0.1")
    sock.listen(64)
    print(json.dumps({"url": url}), flush=True)
    config = uvicorn.Config(app, log_level="warning")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main()
