"""An MCP client: the MCP Python SDK's `OAuthClientProvider`, unchanged, against a protected
MCP server (server.py beside this file) whose authorization server is Patron.

Usage: client.py MCP_URL PERSON [--client-metadata-url URL]

The client is told only the MCP server's URL. The SDK gets a 401 there, reads the protected
resource metadata it names, discovers Patron from it, registers by DCR (a public client,
`token_endpoint_auth_method` none, redirect URI on localhost) and sends the person to
Patron's authorization endpoint. With `--client-metadata-url`, the SDK is given that URL as
its Client ID Metadata Document (`OAuthClientProvider(client_metadata_url=...)`): when
Patron's metadata says `client_id_metadata_document_supported`, it uses the URL as its
client_id instead of registering (the document, published by the test, must describe the
same client: this redirect URI, a public client).

The redirect handler below plays the person with plain HTTP: it opens the authorization URL
(Patron sends it to the login page), logs in with Patron's development login as PERSON, opens
the URL again, reads the CSRF token, the offered grants, the heading and the notices of the
consent page, approves the grants and hands the code, state and iss of the redirect to the
callback handler. The SDK exchanges the code and the client calls two tools.

Then it proves refreshing: it waits until the access token has expired (the skill's ttl is
short), shows the MCP server refuses that token, and opens a new session with the same
provider, which refreshes (a `refresh_token` grant) before calling `whoami` again.

It prints one JSON object: the client information the SDK stored (its registration, or its
URL client id), what the person saw, the tool results, every token the SDK stored, the answer
to the expired token, and every HTTP request the SDK's client sent (with the `grant_type`,
`resource` and `client_id` of each token request, and whether it carried an `Authorization`
header).
"""

import argparse
import html
import json
import re
import time
from urllib.parse import parse_qs, urlencode, urlparse

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

REDIRECT_URI = "http://localhost:8976/callback"


class MemoryStorage(TokenStorage):
    """Keeps the client's registration and every token set it is given."""

    def __init__(self) -> None:
        self.client_info: OAuthClientInformationFull | None = None
        self.tokens: list[OAuthToken] = []
        self.stored_at: list[float] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens[-1] if self.tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens.append(tokens.model_copy())
        self.stored_at.append(time.time())

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def inputs(page: str, name: str) -> list[str]:
    """The values of the inputs called `name` on `page`."""
    found = []
    for tag in re.findall(r"<input\b[^>]*>", page):
        if re.search(rf'\bname="{re.escape(name)}"', tag):
            value = re.search(r'\bvalue="([^"]*)"', tag)
            found.append(html.unescape(value.group(1)) if value else "")
    return found


def consent_view(page: str) -> dict:
    """What the consent page says about the client: its heading, and the text of each
    element with an id among its notices (`<p ... id="...">`)."""
    def text(fragment: str) -> str:
        return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())

    heading = re.search(r"<h1\b[^>]*>(.*?)</h1>", page, re.S)
    notices = {
        m.group(1): text(m.group(2))
        for m in re.finditer(r'<p\b[^>]*\bid="([^"]+)"[^>]*>(.*?)</p>', page, re.S)
    }
    return {"heading": text(heading.group(1)) if heading else None, "notices": notices}


class Person:
    """A person at a browser, acting through plain HTTP: logs in and approves."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict = {}
        self.result: AuthorizationCodeResult | None = None
        self.authorizations = 0

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorizations += 1
        self.seen["authorization_url"] = authorization_url
        u = urlparse(authorization_url)
        origin = f"{u.scheme}://{u.netloc}"
        local = f"{u.path}?{u.query}"
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as b:
            first = await b.get(authorization_url)
            self.seen["anonymous"] = {"status": first.status_code, "location": first.headers.get("location")}
            login = await b.post(
                f"{origin}/console/login/dev", data={"name": self.name, "return_to": local}
            )
            self.seen["login"] = {
                "status": login.status_code,
                "location": login.headers.get("location"),
                "session_cookie": "patron_session" in b.cookies,
            }
            consent = await b.get(authorization_url)
            if consent.status_code != 200 or 'id="consent-form"' not in consent.text:
                raise RuntimeError(f"no consent page: {consent.status_code} {consent.text[:2000]}")
            csrf = inputs(consent.text, "csrf")
            grants = inputs(consent.text, "grant")
            self.seen["offered_grants"] = grants
            self.seen["consent"] = consent_view(consent.text)
            form = [("csrf", csrf[0]), ("action", "approve")] + [("grant", g) for g in grants]
            approved = await b.post(
                authorization_url,
                content=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            location = approved.headers.get("location", "")
            self.seen["approved"] = {"status": approved.status_code, "location": location}
        q = parse_qs(urlparse(location).query)
        if "code" not in q:
            raise RuntimeError(f"no code in the redirect: {approved.status_code} {location} {approved.text[:2000]}")
        self.result = AuthorizationCodeResult(
            code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0]
        )

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None
        result, self.result = self.result, None
        return result


def text_of(result) -> str:
    if result.is_error:
        raise RuntimeError(f"tool error: {result}")
    return "".join(getattr(c, "text", "") for c in result.content)


async def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("mcp_url")
    args.add_argument("person")
    args.add_argument("--client-metadata-url", default=None)
    a = args.parse_args()
    mcp_url, name = a.mcp_url, a.person
    storage = MemoryStorage()
    person = Person(name)
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP SDK client",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=person.redirect_handler,
        callback_handler=person.callback_handler,
        client_metadata_url=a.client_metadata_url,
    )
    requests: list[dict] = []

    async def on_response(response: httpx2.Response) -> None:
        req = response.request
        entry = {"method": req.method, "url": str(req.url), "status": response.status_code}
        if req.url.path.endswith("/token") and req.method == "POST":
            form = parse_qs(req.content.decode())
            entry["grant_type"] = form.get("grant_type", [None])[0]
            entry["resource"] = form.get("resource", [None])[0]
            entry["client_id"] = form.get("client_id", [None])[0]
            entry["authorization"] = "authorization" in req.headers
        if response.status_code == 401:
            entry["www_authenticate"] = response.headers.get("www-authenticate")
        requests.append(entry)

    out: dict = {"requests": requests}
    async with httpx2.AsyncClient(
        auth=provider, timeout=httpx2.Timeout(30.0, read=300.0), event_hooks={"response": [on_response]}
    ) as http:
        # A first session: the whole OAuth flow, then two tools.
        async with Client(streamable_http_client(mcp_url, http_client=http)) as mcp:
            tools = await mcp.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["echo"] = text_of(await mcp.call_tool("echo", {"text": "hello through Patron"}))
            out["whoami"] = json.loads(text_of(await mcp.call_tool("whoami", {})))

        # The access token expires (the SDK counts from expires_in); the server refuses it.
        first = storage.tokens[-1]
        await anyio.sleep(max(0.0, storage.stored_at[-1] + (first.expires_in or 0) + 1.5 - time.time()))
        async with httpx2.AsyncClient(timeout=30) as raw:
            r = await raw.post(
                mcp_url,
                headers={
                    "Authorization": f"Bearer {first.access_token}",
                    "Accept": "application/json, text/event-stream",
                    "Content-Type": "application/json",
                },
                content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            out["expired_token_answer"] = {"status": r.status_code, "www_authenticate": r.headers.get("www-authenticate")}

        # A second session with the same provider: it refreshes first.
        async with Client(streamable_http_client(mcp_url, http_client=http)) as mcp:
            out["whoami_after_refresh"] = json.loads(text_of(await mcp.call_tool("whoami", {})))

    info = storage.client_info
    out["registration"] = info.model_dump(mode="json", exclude_none=True) if info else None
    out["person"] = person.seen
    out["authorizations"] = person.authorizations
    out["tokens"] = [t.model_dump(mode="json") for t in storage.tokens]
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main)
