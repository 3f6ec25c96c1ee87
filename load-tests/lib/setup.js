// Shared setup for the k6 scenarios: services in the directory, dev tokens, conversations.
// Everything goes through the server's real HTTP API (dev tokens must be on: config/local.toml).
import http from 'k6/http';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const ADMIN_URL = __ENV.ADMIN_URL || 'http://127.0.0.1:9090';
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || 'dev-admin-token';
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

export function devTokens(users) {
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
  const customers = devTokens(idx.map((i) => ({ id: `${run}-c${i}`, role: 'customer' })));
  const providers = devTokens(idx.map((i) => ({ id: `${run}-p${i}`, role: 'provider' })));
  const convs = openConversations(idx.map((i) => ({ token: customers[i], service: `${run}-s${i}`, text: 'hello', clientMsgId: `${run}-open-${i}` })));
  return idx.map((i) => ({
    customer: customers[i],
    provider: providers[i],
    conversation: convs[i].conversation.id,
    lastSeq: convs[i].message.seq,
  }));
}
