// openid-client at its defaults running the authorization code flow against Patron:
// discovery from the issuer, an authorization URL with PKCE (S256), `state` and `resource`
// (RFC 8707), then the person's part with plain fetch (the development login, the consent
// page, Approve), then `authorizationCodeGrant` with the callback URL (which checks `state`
// and the RFC 9207 `iss`) and `refreshTokenGrant`.
// Used by tests/api/interop.rs; `npm ci --prefix tests/support/openid_client` installs it
// (scripts/test does).
//
// Usage: node code_flow.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI RESOURCE SCOPE PERSON
//   CLIENT_SECRET "-" means a public client (`none`), else `client_secret_basic`;
//   SCOPE "-" means no `scope` parameter.
// Prints one JSON object with what each step saw; a step that fails unexpectedly throws
// (exit 1, message on stderr).
import * as client from 'openid-client';

const [issuer, clientId, secret, redirectUri, resource, scope, person] = process.argv.slice(2);
if (!person) {
  console.error(
    'usage: node code_flow.mjs ISSUER CLIENT_ID CLIENT_SECRET|- REDIRECT_URI RESOURCE SCOPE|- PERSON',
  );
  process.exit(2);
}
const out = {};

const config = await client.discovery(
  new URL(issuer),
  clientId,
  {},
  secret === '-' ? client.None() : client.ClientSecretBasic(secret),
  // The test server speaks plain HTTP on loopback.
  { execute: [client.allowInsecureRequests] },
);
out.server = {
  issuer: config.serverMetadata().issuer,
  authorization_endpoint: config.serverMetadata().authorization_endpoint,
  code_challenge_methods_supported: config.serverMetadata().code_challenge_methods_supported,
  authorization_response_iss_parameter_supported:
    config.serverMetadata().authorization_response_iss_parameter_supported,
};

const codeVerifier = client.randomPKCECodeVerifier();
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
const state = client.randomState();
const parameters = {
  redirect_uri: redirectUri,
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  state,
  resource,
};
if (scope !== '-') parameters.scope = scope;
const authorizationUrl = client.buildAuthorizationUrl(config, parameters);
out.authorization_url = authorizationUrl.href;
out.state = state;

// ---- the person, as a browser without JavaScript would act -------------------------------

/** Decodes the character references the template engine writes. */
function unescapeHtml(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]+);/g, (_, d) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

async function send(url, init = {}) {
  const res = await fetch(url, { redirect: 'manual', ...init });
  const body = await res.text();
  return { status: res.status, location: res.headers.get('location'), headers: res.headers, body };
}

// Anonymous, the authorization request sends the person to the login page.
const anonymous = await send(authorizationUrl);
out.anonymous = { status: anonymous.status, location: anonymous.location };
const loginUrl = new URL(anonymous.location ?? '/console/login', issuer);
const returnTo = loginUrl.searchParams.get('return_to');

// The development login, returning where the login page was asked to.
const login = await send(new URL('/console/login/dev', issuer), {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ name: person, return_to: returnTo ?? '' }),
});
const session = login.headers
  .getSetCookie()
  .map((c) => c.split(';')[0])
  .find((c) => c.startsWith('patron_session='));
out.login = { status: login.status, location: login.location, session_cookie: !!session };
if (!session) throw new Error(`no session cookie from the development login: ${login.status} ${login.body}`);
const cookie = { cookie: session };

// The consent page.
const consentUrl = new URL(login.location, issuer);
const consent = await send(consentUrl, { headers: cookie });
const csrf = /name="csrf" value="([^"]*)"/.exec(consent.body)?.[1];
const action = /<form\b[^>]*\bid="consent-form"[^>]*>/.exec(consent.body)?.[0];
const formAction = action && /action="([^"]*)"/.exec(action)?.[1];
const grants = [...consent.body.matchAll(/<input type="checkbox" name="grant" value="([^"]*)"( checked)?/g)]
  .map((m) => ({ audience: unescapeHtml(m[1]), checked: !!m[2] }));
out.consent = {
  url: consentUrl.href,
  status: consent.status,
  has_form: consent.body.includes('id="consent-form"'),
  claims_agent: consent.body.includes('id="claims-agent"'),
  shows_client_id: consent.body.includes(clientId),
  form_action: formAction ? unescapeHtml(formAction) : null,
  grants,
};
if (consent.status !== 200 || !csrf || !formAction) {
  throw new Error(`not the consent page: ${consent.status} ${consent.location}\n${consent.body}`);
}

// Approve, with the asked-for skill ticked.
const approved = await send(new URL(unescapeHtml(formAction), consentUrl), {
  method: 'POST',
  headers: { ...cookie, 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams([
    ['csrf', unescapeHtml(csrf)],
    ['action', 'approve'],
    ['grant', resource],
  ]),
});
out.approve = { status: approved.status, location: approved.location };
if (!approved.location) throw new Error(`Approve did not redirect: ${approved.status}\n${approved.body}`);
const callback = new URL(approved.location);
out.callback = Object.fromEntries(callback.searchParams);

// ---- back at the client --------------------------------------------------------------------

/** Runs `f`, which must throw; returns what it threw (or that it did not). */
async function refused(f) {
  try {
    await f();
    return { rejected: false };
  } catch (e) {
    return {
      rejected: true,
      name: e?.constructor?.name,
      code: e?.code,
      message: e?.message,
      // openid-client wraps oauth4webapi's error, which says what was wrong.
      cause: e?.cause?.message,
      error: e?.error,
    };
  }
}

// The callback as an attacker would change it: openid-client must refuse before it sends
// the code anywhere (RFC 9207 §2.4; RFC 6749 §10.12), so the code stays usable below.
const tamperedIss = new URL(callback);
tamperedIss.searchParams.set('iss', 'https://evil.example');
const withoutIss = new URL(callback);
withoutIss.searchParams.delete('iss');
const checks = { pkceCodeVerifier: codeVerifier, expectedState: state };
out.tampered = {
  iss: await refused(() => client.authorizationCodeGrant(config, tamperedIss, checks)),
  missing_iss: await refused(() => client.authorizationCodeGrant(config, withoutIss, checks)),
  state: await refused(() =>
    client.authorizationCodeGrant(config, callback, { ...checks, expectedState: client.randomState() }),
  ),
};

if (Object.values(out.tampered).some((t) => !t.rejected)) {
  // A tampered callback went through (and used the code up): the test reports which.
  console.log(JSON.stringify(out));
  process.exit(0);
}

function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}
function summary(t) {
  return {
    token_type: t.token_type,
    scope: t.scope,
    expires_in: t.expires_in,
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    claims: claims(t.access_token),
  };
}

const tokens = await client.authorizationCodeGrant(config, callback, checks);
out.tokens = summary(tokens);

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
out.refreshed = summary(refreshed);
out.refresh_rotated = !!refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token;
out.access_token_differs = refreshed.access_token !== tokens.access_token;

// The used refresh token again: refused with an OAuth error openid-client reports as such.
out.old_refresh_reused = await refused(() => client.refreshTokenGrant(config, tokens.refresh_token));

console.log(JSON.stringify(out));
