// Shared setup for the k6 scenarios: services in the directory, tokens, conversations.
// Everything goes through the server's real HTTP API. Tokens: with JWT_SECRET set (the server's
// auth.jwt_secret, HS256), they are signed here, as the marketplace backend would sign them, and
// the server needs no dev tokens; without it, they come from POST /api/v1/dev/tokens
// (config/local.toml turns that on).
import http from 'k6/http';
import { hmac } from 'k6/crypto';
import encoding from 'k6/encoding';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const ADMIN_URL = __ENV.ADMIN_URL || 'http://127.0.0.1:9090';
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || 'dev-admin-token';
const JWT_SECRET = __ENV.JWT_SECRET || '';
/** Lifetime of tokens signed here: long enough for any bounded load run. */
const TOKEN_TTL_S = 6 * 3600;
const WS_BASE = BASE_URL.replace(/^http/, 'ws');

export function wsUrl(token) {
  return `${WS_BASE}/ws?access_token=${token}`;
}

/** A name for this run, so repeated runs against one store use fresh users. */
export function runId() {
  return `k${Date.now() % 100000000}`;
}

function check200(res, what) {
  if (res.status < 200 || res.status >= 300) {
    throw new Error(`${what}: HTTP ${res.status} ${res.body}`);
  }
  return res.json();
}

const json = { headers: { 'Content-Type': 'application/json' } };
const asAdmin = { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_TOKEN}` } };
const asUser = (token) => ({ headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` } });

/** Runs requests in batches of 50 (setup can need thousands). */
function batched(requests) {
  const out = [];
  for (let i = 0; i < requests.length; i += 50) {
    out.push(...http.batch(requests.slice(i, i + 50)));
  }
  return out;
}

export function registerServices(services) {
  batched(services.map((s) => ['PUT', `${ADMIN_URL}/admin/v1/services/${s.id}`,
    JSON.stringify({ provider_id: s.provider, title: `Service ${s.id}`, provider_name: `Provider ${s.provider}` }), asAdmin]))
    .forEach((r) => check200(r, 'register service'));
}

/** An HS256 JWT with the claims Switchboard reads (`sub`, `role`, `name`, `exp`). */
export function signToken(secret, user) {
  const b64 = (obj) => encoding.b64encode(JSON.stringify(obj), 'rawurl');
  const claims = { sub: user.id, role: user.role, name: user.id, exp: Math.floor(Date.now() / 1000) + TOKEN_TTL_S };
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${hmac('sha256', secret, unsigned, 'base64rawurl')}`;
}

/** A token per user: signed here with JWT_SECRET, else dev tokens from the server. */
export function tokens(users) {
  if (JWT_SECRET) {
    return users.map((u) => signToken(JWT_SECRET, u));
  }
  return batched(users.map((u) => ['POST', `${BASE_URL}/api/v1/dev/tokens`,
    JSON.stringify({ user_id: u.id, role: u.role, name: u.id }), json]))
    .map((r) => check200(r, 'dev token').token);
}

/** POST /api/v1/conversations for many (token, service, text, client_msg_id) at once. */
export function openConversations(items) {
  return batched(items.map((c) => ['POST', `${BASE_URL}/api/v1/conversations`,
    JSON.stringify({ service_id: c.service, initial_message: c.text, client_msg_id: c.clientMsgId }), asUser(c.token)]))
    .map((r) => check200(r, 'create conversation'));
}

export function sendHttp(token, conversation, text, clientMsgId) {
  return http.post(`${BASE_URL}/api/v1/conversations/${conversation}/messages`,
    JSON.stringify({ text, client_msg_id: clientMsgId }), asUser(token));
}

/** n customer/provider pairs, one service each, each with a conversation and its first message. */
export function setupPairs(n, run) {
  const idx = [...Array(n).keys()];
  registerServices(idx.map((i) => ({ id: `${run}-s${i}`, provider: `${run}-p${i}` })));
  const customers = tokens(idx.map((i) => ({ id: `${run}-c${i}`, role: 'customer' })));
  const providers = tokens(idx.map((i) => ({ id: `${run}-p${i}`, role: 'provider' })));
  const convs = openConversations(idx.map((i) => ({ token: customers[i], service: `${run}-s${i}`, text: 'hello', clientMsgId: `${run}-open-${i}` })));
  return idx.map((i) => ({
    customer: customers[i],
    provider: providers[i],
    conversation: convs[i].conversation.id,
    lastSeq: convs[i].message.seq,
  }));
}
