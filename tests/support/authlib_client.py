"""Gets a client_credentials token from Patron with Authlib at its defaults.

Authlib's OAuth2Session with authlib.oauth2.rfc7523.PrivateKeyJWT (RS256, no kid, an
assertion that lives one hour), as a Python agent would use them. Used by
tests/api/interop.rs; needs `pip install authlib requests` (scripts/test installs them).

Usage: authlib_client.py TOKEN_ENDPOINT CLIENT_ID PRIVATE_KEY_PEM_FILE RESOURCE SCOPE

Prints one JSON object: {"token": <token response>, "assertion": <claims of the assertion
Authlib sent>}; on an OAuth error, {"error": <error response>} and exit status 3.
"""

import base64
import json
import sys
from urllib.parse import parse_qs

from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT


def claims_of(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main():
    token_endpoint, client_id, key_file, resource, scope = sys.argv[1:6]
    with open(key_file) as f:
        private_key = f.read()
    session = OAuth2Session(
        client_id,
        private_key,
        token_endpoint_auth_method=PrivateKeyJWT(token_endpoint),
        scope=scope,
    )
    sent = []
    session.hooks["response"].append(lambda r, *args, **kwargs: sent.append(r.request.body))
    try:
        token = session.fetch_token(
            token_endpoint, grant_type="client_credentials", resource=resource
        )
    except OAuthError as e:
        print(json.dumps({"error": {"error": e.error, "error_description": e.description}}))
        sys.exit(3)
    body = sent[-1]
    if isinstance(body, bytes):
        body = body.decode()
    assertion = parse_qs(body)["client_assertion"][0]
    print(json.dumps({"token": dict(token), "assertion": claims_of(assertion)}))


if __name__ == "__main__":
    main()
