// reconnect_storm: every provider drops its socket; its customer sends MESSAGES messages over HTTP
// while it is away; then every provider reconnects at once and syncs from the last seq it saw.
// Each must receive exactly the missed messages in order: gaps or duplicates fail the run.
//
//   k6 run -e CLIENTS=200 -e MESSAGES=20 load-tests/reconnect_storm.js
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { runId, sendHttp, setupPairs, wsUrl } from './lib/setup.js';

const CLIENTS = parseInt(__ENV.CLIENTS || '200', 10);
const MESSAGES = parseInt(__ENV.MESSAGES || '20', 10);

const replayed = new Counter('messages_replayed');
const gaps = new Counter('sync_gaps');
const duplicates = new Counter('sync_duplicates');
const httpErrors = new Counter('http_errors');
const wsErrors = new Counter('ws_errors');
const resync = new Trend('reconnect_to_synced_ms', true);

export const options = {
  scenarios: {
    storm: { executor: 'per-vu-iterations', vus: CLIENTS, iterations: 1, maxDuration: '180s' },
  },
  setupTimeout: '300s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(95)', 'p(99)'],
  thresholds: {
    sync_gaps: ['count==0'],
    sync_duplicates: ['count==0'],
    http_errors: ['count==0'],
    ws_errors: ['count==0'],
  },
};

export function setup() {
  const run = runId();
  return { run, pairs: setupPairs(CLIENTS, run) };
}

export default function (data) {
  const pair = data.pairs[exec.vu.idInTest - 1];
  // 1. The provider is online once, then gone: it has seq 1 (the opening message).
  const first = new WebSocket(wsUrl(pair.provider));
  first.onmessage = (e) => {
    if (JSON.parse(e.data).type !== 'ready') return;
    first.close();
    // 2. Its customer sends while it is away.
    for (let k = 0; k < MESSAGES; k++) {
      const res = sendHttp(pair.customer, pair.conversation, `offline ${k}`, `${data.run}-${exec.vu.idInTest}-${k}`);
      if (res.status !== 201) httpErrors.add(1);
    }
    // 3. Everyone reconnects at about the same moment (all VUs reach this point together).
    setTimeout(() => reconnect(pair), 1000);
  };
  first.onerror = () => wsErrors.add(1);
}

function reconnect(pair) {
  const started = Date.now();
  const ws = new WebSocket(wsUrl(pair.provider));
  let expect = pair.lastSeq + 1;
  ws.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    if (ev.type === 'ready') {
      ws.send(JSON.stringify({ type: 'sync', conversation_id: pair.conversation, after_seq: pair.lastSeq }));
    } else if (ev.type === 'chat_message') {
      replayed.add(1);
      if (ev.message.seq < expect) duplicates.add(1);
      else {
        gaps.add(ev.message.seq - expect);
        expect = ev.message.seq + 1;
      }
    } else if (ev.type === 'synced') {
      gaps.add(Math.max(0, pair.lastSeq + MESSAGES + 1 - expect));
      resync.add(Date.now() - started);
      ws.close();
    } else if (ev.type === 'error') wsErrors.add(1);
  };
  ws.onerror = () => wsErrors.add(1);
}
