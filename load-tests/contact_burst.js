// contact_burst: CUSTOMERS customers contact one provider at the same moment (create conversation
// + first message over HTTP) while the provider's dashboard socket receives them. Every first
// message must reach the dashboard: a lost one fails the run (exit 99).
//
//   k6 run -e CUSTOMERS=200 load-tests/contact_burst.js
import http from 'k6/http';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { BASE_URL, tokens, registerServices, runId, wsUrl } from './lib/setup.js';

const CUSTOMERS = parseInt(__ENV.CUSTOMERS || '200', 10);
const WAIT_S = parseInt(__ENV.WAIT_S || '20', 10);

const created = new Counter('conversations_created');
const httpErrors = new Counter('http_errors');
const delivered = new Counter('first_messages_delivered');
const lost = new Counter('messages_lost');
const wsErrors = new Counter('ws_errors');
const createToReceive = new Trend('create_to_receive_ms', true);
const createLatency = new Trend('create_ms', true);

export const options = {
  scenarios: {
    dashboard: { executor: 'per-vu-iterations', vus: 1, iterations: 1, exec: 'dashboard', maxDuration: `${WAIT_S + 30}s` },
    customers: { executor: 'per-vu-iterations', vus: CUSTOMERS, iterations: 1, exec: 'customer', startTime: '2s', maxDuration: `${WAIT_S + 30}s` },
  },
  setupTimeout: '300s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(95)', 'p(99)'],
  thresholds: { messages_lost: ['count==0'], http_errors: ['count==0'], ws_errors: ['count==0'] },
};

export function setup() {
  const run = runId();
  const service = `${run}-svc`;
  const provider = `${run}-prov`;
  registerServices([{ id: service, provider }]);
  const [providerToken] = tokens([{ id: provider, role: 'provider' }]);
  const customers = tokens([...Array(CUSTOMERS).keys()].map((i) => ({ id: `${run}-c${i}`, role: 'customer' })));
  return { run, service, providerToken, customers };
}

// The provider's dashboard: counts first messages (seq 1) of new conversations.
export function dashboard(data) {
  const ws = new WebSocket(wsUrl(data.providerToken));
  let seen = 0;
  ws.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    if (ev.type === 'chat_message' && ev.message.seq === 1) {
      seen++;
      delivered.add(1);
      // The text carries the customer's send time (same machine, same clock).
      const sentAt = parseInt(ev.message.text.split(' ').pop(), 10);
      if (!Number.isNaN(sentAt)) createToReceive.add(Date.now() - sentAt);
      if (seen === CUSTOMERS) ws.close();
    } else if (ev.type === 'error') wsErrors.add(1);
  };
  ws.onerror = () => wsErrors.add(1);
  setTimeout(() => {
    if (seen < CUSTOMERS) lost.add(CUSTOMERS - seen);
    ws.close();
  }, WAIT_S * 1000);
}

export function customer(data) {
  // The customer's number within its own scenario: VU ids are shared with the dashboard's
  // scenario, and which VU the dashboard gets is not fixed.
  const i = exec.scenario.iterationInTest;
  const token = data.customers[i];
  const t = Date.now();
  const res = http.post(`${BASE_URL}/api/v1/conversations`,
    JSON.stringify({ service_id: data.service, initial_message: `Is this available? sent ${t}`, client_msg_id: `${data.run}-first-${i}` }),
    { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` } });
  createLatency.add(Date.now() - t);
  if (res.status === 201) created.add(1);
  else {
    httpErrors.add(1);
    console.error(`customer ${i}: HTTP ${res.status} ${res.body}`);
  }
}
