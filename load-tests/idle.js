// idle: SOCKETS authenticated sockets (one user each) held open for HOLD_S seconds. The server's
// memory per socket is measured from outside (load-tests/run.sh samples /proc).
//
//   k6 run -e SOCKETS=1000 -e HOLD_S=60 load-tests/idle.js
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { tokens, runId, wsUrl } from './lib/setup.js';

const SOCKETS = parseInt(__ENV.SOCKETS || '1000', 10);
const HOLD_S = parseInt(__ENV.HOLD_S || '60', 10);

const connected = new Counter('sockets_ready');
const failed = new Counter('ws_errors');

export const options = {
  scenarios: {
    idle: { executor: 'per-vu-iterations', vus: SOCKETS, iterations: 1, maxDuration: `${HOLD_S + 120}s` },
  },
  setupTimeout: '300s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(95)', 'p(99)'],
  thresholds: { ws_errors: ['count==0'] },
};

export function setup() {
  const run = runId();
  return { tokens: tokens([...Array(SOCKETS).keys()].map((i) => ({ id: `${run}-u${i}`, role: 'customer' }))) };
}

export default function (data) {
  const ws = new WebSocket(wsUrl(data.tokens[exec.vu.idInTest - 1]));
  ws.onmessage = (e) => {
    if (JSON.parse(e.data).type === 'ready') {
      connected.add(1);
      setTimeout(() => ws.close(), HOLD_S * 1000);
    }
  };
  ws.onerror = () => failed.add(1);
}
