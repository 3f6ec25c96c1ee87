/**
 * One logical connection to `/ws` that survives drops: authenticates with the first `auth` frame
 * (so the token never sits in a URL or proxy log), refreshes the token on the open socket before
 * its `exp`, and reconnects with full-jitter exponential backoff. It knows nothing of chat: the
 * client (client.ts) gets `ready`, frames and drops through callbacks.
 */
import type { Codec } from './codec.js';
import { jwtPayload } from './codec.js';
import type { ClientFrame, ServerEvent } from './types.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'offline' | 'closed';

/** A token, or a callback that fetches a fresh one (called before `exp` and after close 1008). */
export type TokenSource = string | (() => string | Promise<string>);

/** The part of the WebSocket API used: browsers' and the `ws` package's both fit. */
export interface WebSocketLike {
  readyState: number;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface Backoff {
  minMs: number;
  maxMs: number;
}

/**
 * Full jitter (AWS architecture blog): uniform in [0, min(max, min·2^attempt)], but never below
 * `minMs`, so a flapping network cannot make a client hammer the server.
 */
export function backoffDelay(attempt: number, b: Backoff, rnd: () => number = Math.random): number {
  const cap = Math.min(b.maxMs, b.minMs * 2 ** attempt);
  return Math.max(b.minMs, Math.floor(rnd() * cap));
}

export interface ConnectionOptions {
  url: string;
  token: TokenSource;
  codec: Codec;
  WebSocket: WebSocketCtor;
  backoff: Backoff;
  /** App-level ping period; a socket with no frame for this + 10 s is treated as dead. */
  pingIntervalMs: number;
  onReady(ev: Extract<ServerEvent, { type: 'ready' }>, first: boolean): void;
  onEvent(ev: ServerEvent): void;
  onDrop(code: number): void;
  onState(state: ConnectionState): void;
}

/** Seconds before `exp` at which a fresh token is fetched and sent. */
const REFRESH_LEAD_S = 30;

export class Connection {
  state: ConnectionState = 'idle';
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private token: string | null = null;
  private fetching: Promise<string> | null = null;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private authed = false;
  private sessionId: string | null = null;

  constructor(private o: ConnectionOptions) {}

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.o.onState(s);
  }

  /** The current token, fetching one when there is none or it is about to expire. */
  async currentToken(force = false): Promise<string> {
    const src = this.o.token;
    if (typeof src === 'string') return src;
    const exp = this.token ? jwtPayload(this.token).exp : undefined;
    if (!force && this.token && (!exp || exp - Date.now() / 1000 > REFRESH_LEAD_S)) return this.token;
    // Concurrent callers (socket + several HTTP calls) share one fetch of the fresh token.
    this.fetching ??= Promise.resolve()
      .then(src)
      .then((t) => (this.token = t))
      .finally(() => (this.fetching = null));
    return this.fetching;
  }

  start(): void {
    if (this.state !== 'idle' && this.state !== 'closed' && this.state !== 'offline') return;
    this.attempt = 0;
    void this.open();
  }

  /** Stops for good (until `start`). */
  stop(state: ConnectionState = 'closed'): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // Whatever was in flight on this socket has to go again on the next one.
    if (this.teardown()) this.o.onDrop(1000);
    this.setState(state);
  }

  /** The network came back: reconnect now instead of waiting out the backoff. */
  nudge(): void {
    if (this.state === 'open' || this.state === 'connecting') return;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.attempt = 0;
    void this.open();
  }

  send(frame: ClientFrame): boolean {
    if (!this.ws || !this.authed || this.ws.readyState !== 1) return false;
    this.ws.send(this.o.codec.encode(frame));
    return true;
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private async open(): Promise<void> {
    this.setState(this.attempt === 0 && !this.sessionId ? 'connecting' : 'reconnecting');
    let token: string;
    try {
      token = await this.currentToken();
    } catch {
      return this.scheduleReconnect();
    }
    const ws = new this.o.WebSocket(this.o.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.authed = false;
    ws.onopen = () => ws.send(this.o.codec.encode({ type: 'auth', token }));
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onerror = () => {};
    ws.onclose = (e) => {
      if (this.ws === ws) this.dropped(e.code);
    };
  }

  private onFrame(ws: WebSocketLike, data: unknown): void {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    let ev: ServerEvent;
    try {
      ev = this.o.codec.decode(data as string | ArrayBuffer);
    } catch {
      return;
    }
    if (ev.type === 'ready') {
      const first = !this.authed;
      this.authed = true;
      this.sessionId = ev.session_id;
      this.attempt = 0;
      this.scheduleRefresh();
      if (first) {
        this.startPing();
        this.setState('open');
        this.o.onReady(ev, first);
      }
      return;
    }
    this.o.onEvent(ev);
  }

  /** Sends a fresh token on the open socket shortly before the current one's `exp`. */
  private scheduleRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (typeof this.o.token === 'string' || !this.token) return;
    const exp = jwtPayload(this.token).exp;
    if (!exp) return;
    const inMs = Math.max(1000, (exp - REFRESH_LEAD_S) * 1000 - Date.now());
    this.refreshTimer = setTimeout(async () => {
      try {
        const fresh = await this.currentToken(true);
        this.ws?.send(this.o.codec.encode({ type: 'auth', token: fresh }));
      } catch {
        // The old token still holds until exp; the 1008 close path fetches again.
      }
    }, Math.min(inMs, 2 ** 31 - 1));
  }

  private startPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > this.o.pingIntervalMs + 10_000) {
        this.dropped(4000); // silent for too long: the TCP connection is likely dead
        return;
      }
      this.send({ type: 'ping' });
    }, this.o.pingIntervalMs);
  }

  /** Closes the socket, if any, without reconnecting; answers whether there was one. */
  private teardown(): boolean {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.refreshTimer = this.pingTimer = null;
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    return ws !== null;
  }

  private dropped(code: number): void {
    this.teardown();
    // 1008: bad/expired token or an operator disconnect. A token callback gets asked again.
    if (code === 1008) this.token = null;
    this.o.onDrop(code);
    if (this.state === 'closed' || this.state === 'offline') return;
    if (code === 1008 && typeof this.o.token === 'string') {
      const exp = jwtPayload(this.o.token).exp;
      if (exp && exp * 1000 < Date.now()) return this.stop('closed');
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.state === 'closed' || this.state === 'offline') return;
    this.setState('reconnecting');
    const delay = backoffDelay(this.attempt++, this.o.backoff);
    this.later(delay, () => void this.open());
  }
}
