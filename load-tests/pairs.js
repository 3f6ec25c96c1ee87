// pairs: PAIRS conversations, each with a customer socket and a provider socket; every customer
// sends one message every INTERVAL_MS for DURATION_S seconds. Reports delivered/s, lost, errors,
// send→ack and send→receive latency. A lost message or an error frame fails the run (exit 99).
//
//   k6 run -e PAIRS=200 -e INTERVAL_MS=200 -e DURATION_S=30 load-tests/pairs.js
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, setInterval, clearInterval } from 'k6/timers';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { runId, setupPairs, wsUrl } from './lib/setup.js';

const PAIRS = parseInt(__ENV.PAIRS || '50', 10);
const INTERVAL_MS = parseInt(__ENV.INTERVAL_MS || '1000', 10);
const DURATION_S = parseInt(__ENV.DURATION_S || '30', 10);
const DRAIN_MS = 3000;

const sent = new Counter('messages_sent');
const acked = new Counter('messages_acked');
const delivered = new Counter('messages_delivered');
const lost = new Counter('messages_lost');
const wsErrors = new Counter('ws_errors');
const sendToAck = new Trend('send_to_ack_ms', true);
const sendToReceive = new Trend('send_to_receive_ms', true);

export const options = {
  scenarios: {
    pairs: { executor: 'per-vu-iterations', vus: PAIRS, iterations: 1, maxDuration: `${DURATION_S + 60}s` },
  },
  setupTimeout: '300s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(95)', 'p(99)'],
  thresholds: {
    messages_lost: ['count==0'],
    ws_errors: ['count==0'],
  },
};

export function setup() {
  const run = runId();
  return { run, pairs: setupPairs(PAIRS, run) };
}

export default function (data) {
  const pair = data.pairs[exec.vu.idInTest - 1];
  const pending = {}; // client_msg_id -> send time, until the provider receives it
  const ackPending = {}; // ref -> send time, until the ack
  let ready = 0;
  let n = 0;
  let ticker = null;
  const customer = new WebSocket(wsUrl(pair.customer));
  const provider = new WebSocket(wsUrl(pair.provider));

  const finish = () => {
    const missing = Object.keys(pending).length;
    if (missing > 0) lost.add(missing);
    customer.close();
    provider.close();
  };
  const start = () => {
    // Stagger the customers over one interval so the load is smooth.
    setTimeout(() => {
      ticker = setInterval(() => {
        const ref = `${n++}`;
        const id = `${data.run}-${exec.vu.idInTest}-${ref}`;
        const now = Date.now();
        pending[id] = now;
        ackPending[ref] = now;
        customer.send(JSON.stringify({ type: 'chat_message', conversation_id: pair.conversation, text: `load ${ref}`, client_msg_id: id, ref }));
        sent.add(1);
      }, INTERVAL_MS);
    }, (INTERVAL_MS * (exec.vu.idInTest - 1)) / PAIRS);
    setTimeout(() => {
      clearInterval(ticker);
      setTimeout(finish, DRAIN_MS);
    }, DURATION_S * 1000);
  };
  const onReady = () => { if (++ready === 2) start(); };

  customer.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    if (ev.type === 'ready') onReady();
    else if (ev.type === 'ack' && ackPending[ev.ref] !== undefined) {
      sendToAck.add(Date.now() - ackPending[ev.ref]);
      delete ackPending[ev.ref];
      acked.add(1);
    } else if (ev.type === 'error') wsErrors.add(1);
  };
  provider.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    if (ev.type === 'ready') onReady();
    else if (ev.type === 'chat_message') {
      const t = pending[ev.message.client_msg_id];
      if (t !== undefined) {
        sendToReceive.add(Date.now() - t);
        delete pending[ev.message.client_msg_id];
        delivered.add(1);
      }
    } else if (ev.type === 'error') wsErrors.add(1);
  };
  customer.onerror = (e) => { console.error(`customer socket: ${e.error}`); wsErrors.add(1); };
  provider.onerror = (e) => { console.error(`provider socket: ${e.error}`); wsErrors.add(1); };
}
