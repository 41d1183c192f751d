// A real OpenID provider (npm `oidc-provider`) for Patron's browser test of the owner console.
//
//   node provider.mjs            (settings from the environment)
//
//   OIDC_PORT           port to listen on, on 127.0.0.1 (default 0: any free port)
//   OIDC_CLIENT_ID      the one client's id (default patron-test)
//   OIDC_CLIENT_SECRET  its secret, used with client_secret_basic (default patron-test-secret)
//   OIDC_REDIRECT_PATH  its redirect URI's path (default /console/callback/testidp)
//   OIDC_CONFORM_ID_TOKEN_CLAIMS
//                       "1" keeps oidc-provider's default of putting scope claims (email,
//                       name) only in UserInfo for the code flow, as OpenID Connect Core 5.4
//                       describes; anything else puts them in the ID token too (default)
//
// The redirect URI is `http://127.0.0.1<path>` on any port: the client is registered as a
// native application, whose loopback redirect URIs match regardless of port (RFC 8252 §7.3),
// because Patron binds a free port only after this provider has started.
//
// Accounts: any login works. Account `<login>` has sub `<login>`, e-mail
// `<login>@example.com` (verified unless the login is `unverified`) and name `<login>`.
// Logins and consent use oidc-provider's built-in development pages.
//
// When it listens it prints one line: `oidc-provider ready on http://127.0.0.1:<port>`.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const env = process.env;
const port = Number.parseInt(env.OIDC_PORT ?? '0', 10);
const clientId = env.OIDC_CLIENT_ID || 'patron-test';
const clientSecret = env.OIDC_CLIENT_SECRET || 'patron-test-secret';
const redirectPath = env.OIDC_REDIRECT_PATH || '/console/callback/testidp';
const conform = env.OIDC_CONFORM_ID_TOKEN_CLAIMS === '1';

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`provider.mjs: OIDC_PORT must be a port number, not ${env.OIDC_PORT}`);
  process.exit(2);
}

// A fresh RS256 signing key per run (oidc-provider's built-in key is for development only).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

function startProvider(issuer) {
  return new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        application_type: 'native',
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [`http://127.0.0.1${redirectPath}`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims: conform,
    features: {
      devInteractions: { enabled: true },
    },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: `${sub}@example.com`,
            email_verified: sub !== 'unverified',
            name: sub,
          };
        },
      };
    },
  });
}

// Bind first (the issuer must name the port), then hand requests to the provider.
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = createServer((req, res) => handler(req, res));
server.listen(port, '127.0.0.1', () => {
  const bound = server.address().port;
  const issuer = `http://127.0.0.1:${bound}`;
  const provider = startProvider(issuer);
  provider.on('server_error', (_ctx, err) => console.error('provider server_error:', err));
  provider.on('grant.error', (_ctx, err) => console.error('provider grant.error:', err));
  handler = provider.callback();
  console.log(`oidc-provider ready on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
