// A test OpenID Connect provider built on npm's oidc-provider (pinned in
// package.json), for the Go package providertest (see ../../node.go).
//
// Usage: node server.mjs '<json config>'   (or the config in $OIDC_TEST_CONFIG)
//
// Config (every field optional):
//   port                 TCP port on 127.0.0.1 (0: any free port)
//   clientId             the public client's ID
//   accessTokenTTL       seconds (default 3600)
//   idTokenTTL           seconds (default 3600)
//   deviceCodeTTL        seconds, the device code's expires_in (default 600)
//   interval             seconds, added as "interval" to the device
//                        authorization response (oidc-provider omits it)
//   certFile, keyFile    PEM paths: serve HTTPS instead of HTTP
//   audience             a resource indicator the client may request; see below
//   subject, email, name, password   the test user
//   clientSecret         when set, also registers confidential clients with
//                        this secret: basicClientId (client_secret_basic) and
//                        postClientId (client_secret_post), both allowed the
//                        device_code and refresh_token grants, and ciClientId
//                        (client_secret_basic), allowed client_credentials only
//   strictClientAuth     refuse a confidential client that authenticates with
//                        the other of client_secret_basic and client_secret_post
//                        than it was registered for, as Ory Hydra does (see below)
//   pkceClientId         when set, a public client like clientId whose device
//                        authorization requests must carry an S256
//                        code_challenge, and whose device_code grant requests
//                        must carry the matching code_verifier (see below)
//   exitOnStdinClose     stop when stdin reaches EOF (the parent died)
//
// When listening it prints exactly one line on stdout:
//   OIDC_PROVIDER_ISSUER=<issuer URL>
// Everything else (oidc-provider's notices and warnings, including the
// "Unsupported runtime" warning under Node 20) goes to stderr.
//
// Audience: with `audience` set, the client asks for it by sending
// `resource=<audience>` (RFC 8707) on the device authorization request; the
// alias `audience=<audience>` (Hydra's spelling) is accepted too. The grant
// then keeps that resource: the device_code token response and every refresh
// return an RFC 9068 JWT access token (typ at+jwt) whose aud is the
// audience, with no need to repeat the parameter on token requests. Without
// it access tokens stay opaque. Any other resource value is refused with
// invalid_target. The ciClientId client asks for it the same ways on its
// client_credentials token request.
//
// PKCE on the device flow: oidc-provider 9.13.3 applies pkce.required only to
// the authorization and PAR endpoints; on the device authorization endpoint it
// drops code_challenge as a front-channel parameter, and the device_code grant
// never reads code_verifier. So it neither requires nor checks PKCE there. The
// pkceClientId client gets both from a middleware below, answering as Keycloak
// does for a client that requires PKCE: 400 invalid_request "Missing
// parameter: code_challenge_method" to a device authorization request without
// it, and invalid_grant to a device_code grant request whose code_verifier is
// missing or does not match.
//
// Client authentication: oidc-provider 9.13.3 takes client_secret_basic and
// client_secret_post as one method: a client registered for either may use
// the other. Ory Hydra refuses that with 401 invalid_client. strictClientAuth
// makes this server answer as Hydra does, on the device authorization, token
// and revocation endpoints.
//
// Test-only endpoints (not part of any protocol):
//   GET /__test/counts            request counters as JSON
//   GET /__test/user-codes?after=N
//       user codes issued so far, from index N on; waits up to 20 s for one
//       to appear. Answers {"next": M, "user_codes": [...]}. The Go side
//       uses it to auto-approve every device authorization.
//   GET /__test/tokens?after=N
//       the token ledger: every secret the provider handed out, in order,
//       from index N on: {"next": M, "tokens": [{"seq", "kind"
//       (access_token, refresh_token, id_token or device_code), "value",
//       "sha256" (hex of the value), "grant_type", "grant_id",
//       "expires_at" (Unix seconds, access tokens)}]}. Values are included
//       so that tests can look for them where no token may be (stderr,
//       files after a logout); this provider only ever serves loopback.
//   GET /__test/refresh-presentations
//       every refresh token presented to the token endpoint, keyed by the
//       hex SHA-256 of its value: {"<sha256>": {"presented": n,
//       "succeeded": n, "errors": ["invalid_grant", ...]}}. A token
//       presented twice is a client that replayed a refresh token (the
//       provider then revoked the grant).
//   GET /__test/refresh-token?sha256=HEX
//       whether an issued refresh token would still be honoured, found
//       without spending it: {"known": bool, "active": bool, "state":
//       "active" | "consumed" (rotated) | "revoked" (the token or its
//       grant is gone: revocation, reuse detection) | "expired" |
//       "unknown" (never issued here)}.
//
// SIGTERM or SIGINT stops it cleanly.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as querystring from 'node:querystring';

// oidc-provider prints its notices with console.info (stdout); stdout is
// reserved for the issuer line the Go side reads.
console.log = console.error;
console.info = console.error;

const { default: Provider, errors } = await import('oidc-provider');
// oidc-provider's own in-memory adapter, over a bigger store: its default
// one keeps about 1000 entries (LRU), which a stampede test of many logins
// and refreshes can outgrow, silently losing live grants. Deep imports of
// the pinned 9.13.3 (the package has no "exports" map).
const { default: MemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');
const { default: LRU } = await import('oidc-provider/lib/helpers/lru.js');
const store = new LRU({ maxSize: 200000 });
const clockTolerance = 15; // oidc-provider's default

const cfg = JSON.parse(process.argv[2] || process.env.OIDC_TEST_CONFIG || '{}');
const num = (v, d) => (typeof v === 'number' && v > 0 ? v : d);

const clientId = cfg.clientId || 'kubectl-device-login';
const user = {
  sub: cfg.subject || 'alice',
  email: cfg.email || 'alice@example.test',
  name: cfg.name || 'Alice Example',
  password: cfg.password || 'alice-password',
};
const accessTokenTTL = num(cfg.accessTokenTTL, 3600);
const idTokenTTL = num(cfg.idTokenTTL, 3600);
const deviceCodeTTL = num(cfg.deviceCodeTTL, 600);
const interval = num(cfg.interval, 1);
const audience = cfg.audience || '';
const clientSecret = cfg.clientSecret || '';
const pkceClientId = cfg.pkceClientId || '';
const strictClientAuth = Boolean(cfg.strictClientAuth);
const tls = Boolean(cfg.certFile && cfg.keyFile);

const counts = {
  discovery: 0,
  device_authorization: 0,
  device_code_grant: 0,
  refresh_token_grant: 0,
  revocation: 0,
  client_credentials_grant: 0,
};

// The token ledger (see /__test/tokens) and the refresh token
// presentations (see /__test/refresh-presentations).
const ledger = [];
const refreshValues = new Map(); // sha256 -> value, of issued refresh tokens
const presentations = new Map(); // sha256 -> { presented, succeeded, errors }
const sha256 = (v) => crypto.createHash('sha256').update(v, 'utf8').digest('hex');

function recordIssued(kind, value, grantType, grantId, expiresIn) {
  if (typeof value !== 'string' || value === '') return;
  const entry = {
    seq: ledger.length, kind, value, sha256: sha256(value), grant_type: grantType || '', grant_id: grantId || '',
  };
  if (typeof expiresIn === 'number') entry.expires_at = Math.floor(Date.now() / 1000) + expiresIn;
  ledger.push(entry);
  if (kind === 'refresh_token') refreshValues.set(entry.sha256, value);
}

function recordPresentation(value, ok, error) {
  if (typeof value !== 'string' || value === '') return;
  const h = sha256(value);
  const p = presentations.get(h) || { presented: 0, succeeded: 0, errors: [] };
  p.presented += 1;
  if (ok) p.succeeded += 1;
  else p.errors.push(error);
  presentations.set(h, p);
}

// refreshTokenState looks a refresh token up in the provider's storage,
// as the refresh_token grant does, but without consuming it.
async function refreshTokenState(hash) {
  const value = refreshValues.get(hash);
  if (!value) return { known: false, active: false, state: 'unknown' };
  const rt = await provider.RefreshToken.find(value, { ignoreExpiration: true }).catch(() => undefined);
  let state = 'active';
  if (!rt) state = 'revoked';
  else if (rt.consumed) state = 'consumed';
  else if (rt.isExpired) state = 'expired';
  else if (!(await provider.Grant.find(rt.grantId).catch(() => undefined))) state = 'revoked';
  return { known: true, active: state === 'active', state };
}

// User codes in the order they were issued, and the long polls waiting for
// the next one.
const userCodes = [];
let waiters = [];

const server = tls
  ? https.createServer({ cert: fs.readFileSync(cfg.certFile), key: fs.readFileSync(cfg.keyFile) })
  : http.createServer();

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(num(cfg.port, 0), '127.0.0.1', resolve);
});
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const deviceClient = (id, name, authMethod) => ({
  client_id: id,
  client_name: name,
  application_type: 'native',
  token_endpoint_auth_method: authMethod,
  ...(authMethod === 'none' ? {} : { client_secret: clientSecret }),
  grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
  response_types: [],
  redirect_uris: [],
  scope: 'openid offline_access profile email',
});
const clients = [deviceClient(clientId, 'kubectl device-login (test client)', 'none')];
if (pkceClientId) {
  clients.push(deviceClient(pkceClientId, 'kubectl device-login (PKCE required)', 'none'));
}
if (clientSecret) {
  clients.push(deviceClient(cfg.basicClientId, 'kubectl device-login (client_secret_basic)', 'client_secret_basic'));
  clients.push(deviceClient(cfg.postClientId, 'kubectl device-login (client_secret_post)', 'client_secret_post'));
  clients.push({
    client_id: cfg.ciClientId,
    client_name: 'CI (client credentials)',
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  });
}

const provider = new Provider(issuer, {
  clients,
  adapter: (model) => new MemoryAdapter(model, store, clockTolerance),
  clockTolerance,
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  // Put the profile and email claims in the id_token too, not only at the
  // userinfo endpoint (oidc-provider's default when an access token for
  // userinfo is issued alongside).
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  // Hydra's name for the resource indicator; mapped in defaultResource.
  extraParams: ['audience'],
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: Boolean(clientSecret) },
    revocation: { enabled: true },
    introspection: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource(ctx) {
        // Only the device authorization request may name the audience this
        // way; token requests fall back to the granted one (below), but for
        // the client credentials grant, which has no earlier request.
        if (ctx.oidc.route === 'device_authorization' && ctx.oidc.params.audience) {
          return ctx.oidc.params.audience;
        }
        // (The token endpoint keeps no extra parameters: read the form.)
        if (ctx.oidc.route === 'token' && ctx.oidc.params.grant_type === 'client_credentials'
            && typeof ctx.oidc.body?.audience === 'string') {
          return ctx.oidc.body.audience;
        }
        return undefined;
      },
      // Keep the resource granted at device authorization for the device_code
      // and refresh_token grants (by default oidc-provider drops it when the
      // openid scope and userinfo are in play, and issues an opaque token).
      useGrantedResource() {
        return true;
      },
      getResourceServerInfo(ctx, resourceIndicator) {
        if (audience && resourceIndicator === audience) {
          return {
            scope: 'openid offline_access profile email',
            audience,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
  // Rotate every refresh token on use. Reuse of a rotated one revokes the
  // whole grant: oidc-provider does that unconditionally.
  rotateRefreshToken: true,
  // Refresh tokens come only with offline_access granted, which takes the
  // consent prompt: every approval goes through the consent page below
  // (a new browser session has no grant), which grants every missing scope.
  ttl: {
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    IdToken: idTokenTTL,
    DeviceCode: deviceCodeTTL,
    RefreshToken: 24 * 60 * 60,
    Grant: 24 * 60 * 60,
    Session: 24 * 60 * 60,
    Interaction: 60 * 60,
  },
  interactions: {
    url(ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  async findAccount(ctx, sub) {
    if (sub !== user.sub) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: user.email, email_verified: true, name: user.name };
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>Error</title></head><body>
<h1 id="error">${htmlEscape(out.error)}</h1><p>${htmlEscape(out.error_description || '')}</p>
</body></html>`;
  },
});

// Counting, and the missing "interval", as Koa middleware around every
// oidc-provider route.
provider.use(async (ctx, next) => {
  const { method, path } = ctx;
  if (method === 'GET' && (path === '/.well-known/openid-configuration'
      || path === '/.well-known/oauth-authorization-server')) {
    counts.discovery += 1;
  }
  await next();
  const route = ctx.oidc?.route;
  if (method !== 'POST' || !route) return;
  switch (route) {
    case 'device_authorization':
      counts.device_authorization += 1;
      if (ctx.status === 200 && ctx.body && ctx.body.device_code) {
        ctx.body.interval = interval;
        recordIssued('device_code', ctx.body.device_code, 'device_authorization', '', undefined);
        userCodes.push(ctx.body.user_code);
        const w = waiters;
        waiters = [];
        w.forEach((fn) => fn());
      }
      break;
    case 'token': {
      const gt = ctx.oidc.body?.grant_type;
      if (gt === 'urn:ietf:params:oauth:grant-type:device_code') counts.device_code_grant += 1;
      else if (gt === 'refresh_token') counts.refresh_token_grant += 1;
      else if (gt === 'client_credentials') counts.client_credentials_grant += 1;
      const ok = ctx.status === 200 && ctx.body && typeof ctx.body === 'object';
      if (gt === 'refresh_token') {
        recordPresentation(ctx.oidc.body?.refresh_token, ok, (ctx.body && ctx.body.error) || `HTTP ${ctx.status}`);
      }
      if (ok) {
        const grantId = ctx.oidc.entities?.Grant?.jti;
        recordIssued('access_token', ctx.body.access_token, gt, grantId, ctx.body.expires_in);
        recordIssued('refresh_token', ctx.body.refresh_token, gt, grantId, undefined);
        recordIssued('id_token', ctx.body.id_token, gt, grantId, undefined);
      }
      break;
    }
    case 'revocation':
      counts.revocation += 1;
      break;
    default:
  }
});

// PKCE for pkceClientId, and the strict client authentication (see the
// top of this file). The form is read here, checked, and handed on to
// oidc-provider as req.body, which it then uses in place of the stream (it
// warns once that it does).
const pkceChallenges = new Map(); // device_code -> its S256 code_challenge
const registeredAuth = new Map(clients.map((c) => [c.client_id, c.token_endpoint_auth_method]));
if (pkceClientId || strictClientAuth) {
  const deviceGrant = 'urn:ietf:params:oauth:grant-type:device_code';
  const refuse = (ctx, status, error, description) => {
    ctx.status = status;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { error, error_description: description };
  };
  const kinds = { '/device/auth': 'device', '/token': 'token', '/token/revocation': 'revocation' };
  provider.use(async (ctx, next) => {
    const kind = ctx.method === 'POST' && kinds[ctx.path];
    if (!kind || !ctx.is('application/x-www-form-urlencoded')) {
      await next();
      return;
    }
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    ctx.req.body = Buffer.concat(chunks);
    const form = querystring.parse(ctx.req.body.toString('utf8'));
    const counted = { device: 'device_authorization', revocation: 'revocation' }[kind]
      || { [deviceGrant]: 'device_code_grant', refresh_token: 'refresh_token_grant', client_credentials: 'client_credentials_grant' }[form.grant_type];

    if (strictClientAuth) {
      let id = form.client_id;
      let used = 'none';
      const basic = /^basic\s+(\S+)$/i.exec(ctx.get('authorization'));
      if (basic) {
        used = 'client_secret_basic';
        id = decodeURIComponent(Buffer.from(basic[1], 'base64').toString('utf8').split(':')[0]);
      } else if (form.client_secret) {
        used = 'client_secret_post';
      }
      const registered = registeredAuth.get(id);
      if (registered && registered !== 'none' && used !== 'none' && used !== registered) {
        if (counted) counts[counted] += 1;
        refuse(ctx, 401, 'invalid_client', `Client authentication failed. The OAuth 2.0 Client supports client authentication method '${registered}', but method '${used}' was requested.`);
        return;
      }
    }

    if (kind === 'device' && pkceClientId && form.client_id === pkceClientId) {
      if (!form.code_challenge || form.code_challenge_method !== 'S256') {
        counts.device_authorization += 1;
        refuse(ctx, 400, 'invalid_request', 'Missing parameter: code_challenge_method');
        return;
      }
      await next();
      if (ctx.status === 200 && ctx.body?.device_code) {
        pkceChallenges.set(ctx.body.device_code, form.code_challenge);
      }
      return;
    }
    const challenge = kind === 'token' && form.grant_type === deviceGrant
      && pkceChallenges.get(form.device_code);
    if (challenge) {
      const verifier = typeof form.code_verifier === 'string' ? form.code_verifier : '';
      if (!verifier || crypto.createHash('sha256').update(verifier).digest('base64url') !== challenge) {
        counts.device_code_grant += 1;
        refuse(ctx, 400, 'invalid_grant', verifier
          ? 'PKCE verification failed: code_verifier does not match the code_challenge'
          : 'Missing parameter: code_verifier');
        return;
      }
    }
    await next();
  });
}

provider.on('server_error', (ctx, err) => console.error('server_error', err));

function htmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res, status, title, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!DOCTYPE html><html><head><title>${htmlEscape(title)}</title></head><body>
<h1>${htmlEscape(title)}</h1>
${body}
</body></html>`);
}

function json(res, status, value) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(value));
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

function loginForm(uid, message) {
  return `${message ? `<p id="message">${htmlEscape(message)}</p>` : ''}
<form id="login" method="post" action="/interaction/${uid}/login">
  <input type="text" name="login" autofocus>
  <input type="password" name="password">
  <button type="submit">Sign in</button>
</form>`;
}

// The login and consent pages the device flow sends the browser to.
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (details.uid !== uid) {
    page(res, 400, 'Error', '<p>interaction mismatch</p>');
    return;
  }

  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      page(res, 200, 'Sign-in', loginForm(uid));
    } else if (prompt.name === 'consent') {
      const scopes = [...(prompt.details.missingOIDCScope || [])].join(' ');
      page(res, 200, 'Authorize', `<p>${htmlEscape(params.client_id)} asks for: <span id="scopes">${htmlEscape(scopes)}</span></p>
<form id="consent" method="post" action="/interaction/${uid}/confirm">
  <button type="submit">Allow</button>
</form>
<form id="deny" method="post" action="/interaction/${uid}/abort">
  <button type="submit">Deny</button>
</form>`);
    } else {
      page(res, 501, 'Error', `<p>unknown prompt ${htmlEscape(prompt.name)}</p>`);
    }
    return;
  }

  if (req.method !== 'POST') {
    page(res, 405, 'Error', '<p>method not allowed</p>');
    return;
  }
  const form = await readForm(req);

  switch (action) {
    case 'login': {
      if (prompt.name !== 'login') {
        page(res, 400, 'Error', '<p>not at the login prompt</p>');
        return;
      }
      if (form.login !== user.sub || form.password !== user.password) {
        page(res, 200, 'Sign-in', loginForm(uid, 'Invalid login or password.'));
        return;
      }
      await provider.interactionFinished(req, res, {
        login: { accountId: user.sub },
      }, { mergeWithLastSubmission: false });
      return;
    }
    case 'confirm': {
      if (prompt.name !== 'consent') {
        page(res, 400, 'Error', '<p>not at the consent prompt</p>');
        return;
      }
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scope] of Object.entries(d.missingResourceScopes)) {
          grant.addResourceScope(indicator, scope.join(' '));
        }
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, {
        mergeWithLastSubmission: true,
      });
      return;
    }
    case 'abort':
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'End-User denied the request',
      }, { mergeWithLastSubmission: false });
      return;
    default:
      page(res, 404, 'Error', '<p>not found</p>');
  }
}

async function testEndpoint(req, res, url) {
  if (url.pathname === '/__test/counts') {
    json(res, 200, counts);
    return;
  }
  if (url.pathname === '/__test/user-codes') {
    const after = Math.max(0, Number.parseInt(url.searchParams.get('after') || '0', 10) || 0);
    if (userCodes.length <= after) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 20000);
        const done = () => { clearTimeout(timer); resolve(); };
        waiters.push(done);
        res.on('close', done);
      });
    }
    json(res, 200, { next: userCodes.length, user_codes: userCodes.slice(after) });
    return;
  }
  if (url.pathname === '/__test/tokens') {
    const after = Math.max(0, Number.parseInt(url.searchParams.get('after') || '0', 10) || 0);
    json(res, 200, { next: ledger.length, tokens: ledger.slice(after) });
    return;
  }
  if (url.pathname === '/__test/refresh-presentations') {
    json(res, 200, Object.fromEntries(presentations));
    return;
  }
  if (url.pathname === '/__test/refresh-token') {
    json(res, 200, await refreshTokenState(url.searchParams.get('sha256') || ''));
    return;
  }
  json(res, 404, { error: 'not_found' });
}

const callback = provider.callback();
const interactionPath = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/;

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  let handled;
  if (url.pathname.startsWith('/__test/')) {
    handled = testEndpoint(req, res, url);
  } else {
    const m = interactionPath.exec(url.pathname);
    if (m) {
      handled = interaction(req, res, m[1], m[2]);
    } else {
      callback(req, res);
      return;
    }
  }
  handled.catch((err) => {
    console.error('test server error:', err);
    if (!res.headersSent) page(res, err.statusCode || 500, 'Error', `<p>${htmlEscape(err.message)}</p>`);
    else res.destroy();
  });
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  const w = waiters;
  waiters = [];
  w.forEach((fn) => fn());
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (cfg.exitOnStdinClose) {
  // The Go side holds our stdin open; if it dies without a SIGTERM for us,
  // stdin ends and we stop too.
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

process.stdout.write(`OIDC_PROVIDER_ISSUER=${issuer}\n`);
