// openid-client at its defaults: discovery from the issuer, private_key_jwt with the
// agent's P-256 key, then a client_credentials grant with `resource` and `scope`.
// Used by tests/api/interop.rs; `npm ci --prefix tests/support/openid_client` installs it
// (scripts/test does).
//
// Usage: node client_credentials.mjs ISSUER CLIENT_ID KID PKCS8_PEM_FILE RESOURCE SCOPE
// Prints the token response as JSON; on an OAuth error prints {"error": …} and exits 3.
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';

const [issuer, clientId, kid, pemFile, resource, scope] = process.argv.slice(2);
const der = Buffer.from(
  readFileSync(pemFile, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''),
  'base64',
);
const key = await crypto.subtle.importKey(
  'pkcs8',
  der,
  { name: 'ECDSA', namedCurve: 'P-256' },
  false,
  ['sign'],
);

try {
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    {},
    client.PrivateKeyJwt({ key, kid }),
    // The test server speaks plain HTTP on loopback.
    { execute: [client.allowInsecureRequests] },
  );
  const tokens = await client.clientCredentialsGrant(config, { scope, resource });
  console.log(JSON.stringify(tokens));
} catch (e) {
  if (e instanceof client.ResponseBodyError) {
    console.log(JSON.stringify({ error: { error: e.error, error_description: e.error_description } }));
    process.exit(3);
  }
  throw e;
}
