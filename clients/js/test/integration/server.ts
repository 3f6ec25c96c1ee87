/**
 * Starts the real Switchboard binary (SB_SERVER_BIN, default /tmp/sb-new) on ephemeral ports
 * with a temporary store, as tests/integration/harness.rs does, and offers what the tests need
 * from the marketplace side: services (admin API), dev tokens and HS256-signed tokens.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { SwitchboardClient } from '../../src/index.js';
import type { ClientOptions, WebSocketCtor } from '../../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
export const CONFIG = resolve(here, '../../../../config/local.toml');
export const SECRET = 'dev-secret-change-me-0123456789abcdef';
export const ADMIN_TOKEN = 'dev-admin-token';

export interface Server {
  http: string;
  admin: string;
  stop(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const bin = process.env.SB_SERVER_BIN || '/tmp/sb-new';
  const dir = mkdtempSync(join(tmpdir(), 'sb-client-'));
  const child: ChildProcess = spawn(bin, ['serve', '--config', CONFIG], {
    env: {
      ...process.env,
      SWITCHBOARD_HTTP__ADDR: '127.0.0.1:0',
      SWITCHBOARD_ADMIN__ADDR: '127.0.0.1:0',
      SWITCHBOARD_STORE__PATH: join(dir, 'store'),
      SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE: '0',
      SWITCHBOARD_LIMITS__CONVERSATIONS_PER_HOUR: '0',
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  // The first stdout line is `switchboard listening http=ADDR admin=ADDR`.
  const line = await new Promise<string>((ok, fail) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error('server did not print its listening line in 20 s')), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        ok(buf.slice(0, nl));
      }
    });
    child.on('exit', (code) => fail(new Error(`server exited early (${code}); is ${bin} built?`)));
    child.on('error', (e) => fail(new Error(`cannot start ${bin} (set SB_SERVER_BIN): ${e.message}`)));
  });
  child.stdout!.resume();
  const http = /http=(\S+)/.exec(line)?.[1];
  const admin = /admin=(\S+)/.exec(line)?.[1];
  if (!http || !admin) throw new Error(`unexpected first line: ${line}`);
  return {
    http: `http://${http}`,
    admin: `http://${admin}`,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function adminCall(server: Server, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${server.admin}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}

export async function devToken(server: Server, user_id: string, role: 'customer' | 'provider', name = user_id): Promise<string> {
  const res = await fetch(`${server.http}/api/v1/dev/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user_id, role, name }),
  });
  if (!res.ok) throw new Error(`dev token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/** An HS256 JWT as the marketplace backend would sign it, with a chosen lifetime. */
export function signedToken(sub: string, role: string, ttlSeconds: number): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, role, name: sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

let counter = 0;
/** A service with fresh ids, so tests in one server never share conversations. */
export async function newService(server: Server): Promise<{ serviceId: string; providerId: string; customerId: string }> {
  counter++;
  const tag = `${process.pid}-${counter}`;
  const serviceId = `svc-${tag}`;
  const providerId = `prov-${tag}`;
  await adminCall(server, 'PUT', `/admin/v1/services/${serviceId}`, { provider_id: providerId, title: `Service ${tag}`, provider_name: 'Greta' });
  return { serviceId, providerId, customerId: `cust-${tag}` };
}

export function client(server: Server, opts: Partial<ClientOptions> & Pick<ClientOptions, 'token'>): SwitchboardClient {
  return new SwitchboardClient({ baseUrl: server.http, WebSocket: WebSocket as unknown as WebSocketCtor, ...opts });
}

/** Resolves when `pred` holds, polling; rejects with `what` after `ms`. */
export async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
