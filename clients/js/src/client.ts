/**
 * `SwitchboardClient`: the socket protocol on top of `Connection`, the HTTP API, the outbox and
 * the UI state, wired together so an app only calls `send`, `typing`, `markRead`, `watch`.
 *
 * On every (re)connect: each watched conversation is `sync`ed from its watermark (the highest
 * seq held without a gap), unread counts are re-read, then the outbox is flushed. Acks and
 * replays land in `ChatState`, which dedupes by seq, so nothing shows twice or goes missing.
 */
import { jsonCodec } from './codec.js';
import type { Codec } from './codec.js';
import { Connection } from './connection.js';
import type { Backoff, ConnectionState, TokenSource, WebSocketCtor } from './connection.js';
import { HttpApi, SwitchboardError } from './http.js';
import { Outbox, newClientMsgId } from './outbox.js';
import type { OutboxEntry, StorageAdapter } from './outbox.js';
import { ChatState } from './state.js';
import type { Conversation, EventOf, Id, Message, ServerEvent, ServerEventType } from './types.js';
import { compareIds } from './types.js';

export interface ClientOptions {
  token: TokenSource;
  /** API origin (`https://chat.example.com`); default `''`: same origin, relative URLs. */
  baseUrl?: string;
  /** Socket URL; default derived from `baseUrl` (or `location`) + `/ws`. */
  wsUrl?: string;
  /** Defaults to `globalThis.WebSocket` (browsers, Node 22); pass `ws` in Node 20. */
  WebSocket?: WebSocketCtor;
  /** Keeps the outbox across page reloads (e.g. `localStorage`). */
  storage?: StorageAdapter;
  /** Storage key; namespace it per user if several users share a browser. */
  storageKey?: string;
  codec?: Codec;
  backoff?: Partial<Backoff>;
  pingIntervalMs?: number;
  /** Send `delivered` for messages from others as they arrive (default true). */
  autoDelivered?: boolean;
  fetch?: typeof fetch;
}

type Handler<T> = (ev: T) => void;
type ClientEvents = { [K in ServerEventType]: EventOf<K> } & {
  state: ConnectionState;
  /** Something in `state` or `outbox` changed: re-render. */
  change: void;
};

/** Typing: refresh `is_typing: true` this often while keys are pressed, stop after idle. */
const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 4000;

function defaultWsUrl(baseUrl: string): string {
  if (baseUrl) return `${baseUrl.replace(/^http/, 'ws')}/ws`;
  const loc = (globalThis as { location?: Location }).location;
  if (!loc) throw new Error('baseUrl or wsUrl is required outside a browser');
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}

export class SwitchboardClient {
  readonly state: ChatState;
  readonly outbox: Outbox;
  readonly http: HttpApi;
  userId: string | null = null;
  /** Bumped on every `change`: a cheap snapshot for React's useSyncExternalStore. */
  changes = 0;
  private conn: Connection;
  private handlers = new Map<keyof ClientEvents, Set<Handler<never>>>();
  private watched = new Set<Id>();
  private syncing = new Set<Id>();
  private waiters = new Map<string, { resolve(m: Message): void; reject(e: Error): void }>();
  private typingState = new Map<Id, { lastSent: number; idle: ReturnType<typeof setTimeout> }>();
  private deliveredTimers = new Map<Id, ReturnType<typeof setTimeout>>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private typingSweep: ReturnType<typeof setInterval> | null = null;
  private autoDelivered: boolean;
  private removeNetListeners: (() => void) | null = null;
  /** Messages this client deleted "for me": hidden rather than shown as tombstones. */
  private hiddenByMe = new Set<Id>();

  constructor(opts: ClientOptions) {
    const baseUrl = opts.baseUrl ?? '';
    this.state = new ChatState();
    this.outbox = new Outbox(opts.storage, opts.storageKey);
    this.autoDelivered = opts.autoDelivered ?? true;
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!WS) throw new Error('no WebSocket implementation: pass options.WebSocket');
    const codec = opts.codec ?? jsonCodec;
    let url = opts.wsUrl ?? defaultWsUrl(baseUrl);
    if (codec.format) url += `${url.includes('?') ? '&' : '?'}format=${codec.format}`;
    this.conn = new Connection({
      url,
      token: opts.token,
      codec,
      WebSocket: WS,
      backoff: { minMs: 500, maxMs: 20_000, ...opts.backoff },
      pingIntervalMs: opts.pingIntervalMs ?? 25_000,
      onReady: (ev) => this.onReady(ev),
      onEvent: (ev) => this.onEvent(ev),
      onDrop: () => {
        this.outbox.resetInflight();
        this.syncing.clear();
      },
      onState: (s) => {
        this.emit('state', s);
        this.emit('change', undefined);
      },
    });
    this.http = new HttpApi({ baseUrl, token: (force) => this.conn.currentToken(force), fetch: opts.fetch });
    this.state.subscribe(() => this.emit('change', undefined));
    this.outbox.subscribe(() => this.emit('change', undefined));
  }

  get connectionState(): ConnectionState {
    return this.conn.state;
  }

  /** Opens the socket (and follows the browser's online/offline events). */
  connect(): this {
    this.conn.start();
    this.typingSweep ??= setInterval(() => this.state.expireTyping(), 1000);
    const w = globalThis as { addEventListener?: Window['addEventListener']; removeEventListener?: Window['removeEventListener'] };
    if (w.addEventListener && !this.removeNetListeners) {
      // A dead network often shows no socket error for minutes; the browser knows sooner.
      const offline = () => this.conn.stop('offline');
      const online = () => this.conn.nudge();
      w.addEventListener('offline', offline);
      w.addEventListener('online', online);
      this.removeNetListeners = () => {
        w.removeEventListener?.('offline', offline);
        w.removeEventListener?.('online', online);
      };
    }
    return this;
  }

  close(): void {
    this.conn.stop('closed');
    this.removeNetListeners?.();
    this.removeNetListeners = null;
    if (this.typingSweep) clearInterval(this.typingSweep);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const t of this.deliveredTimers.values()) clearTimeout(t);
    for (const t of this.typingState.values()) clearTimeout(t.idle);
    this.typingSweep = this.retryTimer = null;
  }

  on<K extends keyof ClientEvents>(type: K, fn: Handler<ClientEvents[K]>): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(fn as Handler<never>);
    return () => set!.delete(fn as Handler<never>);
  }

  private emit<K extends keyof ClientEvents>(type: K, ev: ClientEvents[K]): void {
    if (type === 'change') this.changes++;
    for (const fn of [...(this.handlers.get(type) ?? [])]) (fn as Handler<ClientEvents[K]>)(ev);
  }

  // ---- conversations -------------------------------------------------------------------------

  /** Keeps a conversation in sync (on every reconnect, and whenever a gap shows). */
  watch(conversationId: Id): void {
    if (this.watched.has(conversationId)) return;
    this.watched.add(conversationId);
    this.sync(conversationId);
  }

  unwatch(conversationId: Id): void {
    this.watched.delete(conversationId);
  }

  /** Loads the first page of conversations into state and watches them all. */
  async loadConversations(q: Parameters<HttpApi['listConversations']>[0] = {}): Promise<Conversation[]> {
    const page = await this.http.listConversations(q);
    this.state.setConversations(page.items);
    for (const c of page.items) this.watch(c.id);
    return page.items;
  }

  /** Loads one page of history: the newest, or the one before the oldest message held. */
  async loadHistory(conversationId: Id, opts: { older?: boolean; limit?: number } = {}): Promise<boolean> {
    const before = opts.older ? this.state.oldest(conversationId)?.id : undefined;
    const page = await this.http.messages(conversationId, { before, limit: opts.limit });
    this.state.addHistory(conversationId, page.items, !before);
    return page.next_cursor !== null;
  }

  async loadUnread(): Promise<void> {
    const u = await this.http.unread();
    this.state.setUnreadSummary(u.total, u.conversations);
  }

  /**
   * A customer's first contact (or another message to the same service's conversation). Over
   * HTTP with a `client_msg_id`, retried on network errors and 503/429 with the same id, so a
   * retry never creates a second message.
   */
  async contact(serviceId: string, text: string, providerId?: string): Promise<{ conversation: Conversation; message: Message }> {
    const body = { service_id: serviceId, provider_id: providerId, initial_message: text, client_msg_id: newClientMsgId() };
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.http.createConversation(body);
        this.state.upsertConversation(res.conversation);
        this.state.addMessage(res.message);
        this.watch(res.conversation.id);
        return res;
      } catch (e) {
        const retryable = !(e instanceof SwitchboardError) || e.status === 503 || e.status === 429;
        if (!retryable || attempt >= 4) throw e;
        const wait = e instanceof SwitchboardError && e.retryAfter ? e.retryAfter * 1000 : 500 * 2 ** attempt;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  // ---- sending ---------------------------------------------------------------------------------

  /**
   * Queues a message; resolves with the stored message once acked (after reconnects if need be),
   * rejects if the server refuses it for good (e.g. `message_rejected`, `text_too_long`).
   */
  send(conversationId: Id, text: string, opts: { attachmentIds?: Id[]; clientMsgId?: string } = {}): Promise<Message> {
    const entry = this.outbox.add({
      conversation_id: conversationId,
      text,
      attachment_ids: opts.attachmentIds?.length ? opts.attachmentIds : undefined,
      client_msg_id: opts.clientMsgId,
    });
    const done = new Promise<Message>((resolve, reject) => this.waiters.set(entry.client_msg_id, { resolve, reject }));
    this.stopTyping(conversationId);
    this.flush();
    return done;
  }

  /** Messages queued but not acked yet, for showing as "sending…" (or failed). */
  pending(conversationId: Id): OutboxEntry[] {
    return this.outbox.pending(conversationId);
  }

  private flush(): void {
    if (this.conn.state !== 'open') return;
    // One `now` for both questions: with two clock reads, an entry that came due between them
    // was neither sent (not due at the first) nor given a timer (no longer in the future at the
    // second), and waited for an unrelated event that might never come.
    const now = Date.now();
    for (const e of this.outbox.takeSendable(now)) {
      this.conn.send({
        type: 'chat_message',
        conversation_id: e.conversation_id,
        text: e.text,
        client_msg_id: e.client_msg_id,
        attachment_ids: e.attachment_ids,
        ref: e.client_msg_id,
      });
    }
    const next = this.outbox.nextRetryAt(now);
    if (next && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flush();
      }, next - now);
    }
  }

  // ---- typing, receipts ------------------------------------------------------------------------

  /** Call on every keystroke: sends `is_typing: true` at most every 3 s, `false` after 4 s idle. */
  typing(conversationId: Id): void {
    const now = Date.now();
    const t = this.typingState.get(conversationId);
    if (t) clearTimeout(t.idle);
    // Decided by a flag, not by `lastSent === now`: two keystrokes in the same millisecond would
    // otherwise both count as "due" and send twice.
    const due = !t || now - t.lastSent >= TYPING_REFRESH_MS;
    const lastSent = due ? now : t.lastSent;
    if (due) this.conn.send({ type: 'typing_status', conversation_id: conversationId, is_typing: true });
    const idle = setTimeout(() => this.stopTyping(conversationId), TYPING_IDLE_MS);
    this.typingState.set(conversationId, { lastSent, idle });
  }

  /** Stops the typing indicator now (on send, blur or an emptied input). */
  stopTyping(conversationId: Id): void {
    const t = this.typingState.get(conversationId);
    if (!t) return;
    clearTimeout(t.idle);
    this.typingState.delete(conversationId);
    this.conn.send({ type: 'typing_status', conversation_id: conversationId, is_typing: false });
  }

  /** Marks read up to a message (default: everything). Socket when open, else HTTP. */
  async markRead(conversationId: Id, upTo?: Id): Promise<void> {
    if (this.conn.send({ type: 'mark_read', conversation_id: conversationId, up_to: upTo })) return;
    const r = await this.http.markRead(conversationId, upTo);
    this.state.setUnread(conversationId, r.unread_count);
  }

  /** Deletes for me (hidden here) or for everyone (a tombstone on both sides). */
  async deleteMessage(conversationId: Id, messageId: Id, forWhom: 'me' | 'everyone' = 'me'): Promise<void> {
    if (forWhom === 'me') this.hiddenByMe.add(messageId);
    await this.http.deleteMessage(messageId, forWhom);
    if (forWhom === 'me') this.state.hideMessage(conversationId, messageId);
    else this.state.tombstone(conversationId, messageId);
  }

  delivered(conversationId: Id, upTo: Id): void {
    this.conn.send({ type: 'delivered', conversation_id: conversationId, up_to: upTo });
  }

  // ---- incoming --------------------------------------------------------------------------------

  private onReady(ev: EventOf<'ready'>): void {
    this.userId = ev.user_id;
    for (const id of this.watched) this.sync(id, true);
    this.loadUnread().catch(() => {});
    this.flush();
  }

  private sync(conversationId: Id, force = false): void {
    if (this.syncing.has(conversationId) && !force) return;
    const after = this.state.watermark(conversationId);
    if (this.conn.send({ type: 'sync', conversation_id: conversationId, after_seq: after, ref: `sync:${conversationId}` })) {
      this.syncing.add(conversationId);
    }
  }

  private onEvent(ev: ServerEvent): void {
    if (ev.type === 'message_deleted') {
      if (this.hiddenByMe.has(ev.message_id)) this.state.hideMessage(ev.conversation_id, ev.message_id);
      else this.state.tombstone(ev.conversation_id, ev.message_id);
    } else if (ev.type === 'ack' || ev.type === 'chat_message') {
      const result = this.state.apply(ev);
      const m = ev.message;
      if (!this.watched.has(m.conversation_id)) this.watched.add(m.conversation_id);
      if (ev.type === 'ack') this.acked(ev.ref ?? m.client_msg_id ?? '', m);
      else if (m.client_msg_id && m.sender_id === this.userId && this.outbox.get(m.client_msg_id)) this.acked(m.client_msg_id, m);
      if (result === 'gap' && !this.syncing.has(m.conversation_id)) this.sync(m.conversation_id);
      if (ev.type === 'chat_message' && this.autoDelivered && m.sender_id !== this.userId && m.status === 'sent') {
        this.scheduleDelivered(m);
      }
    } else if (ev.type === 'synced') {
      this.syncing.delete(ev.conversation_id);
      if (this.state.watermark(ev.conversation_id) < ev.last_seq) this.sync(ev.conversation_id);
    } else if (ev.type === 'error' && ev.ref) {
      this.refused(ev);
    } else if (ev.type === 'conversation') {
      this.state.apply(ev);
      this.watch(ev.conversation.id);
    } else {
      this.state.apply(ev);
    }
    this.emit(ev.type, ev as never);
  }

  private acked(clientMsgId: string, m: Message): void {
    this.outbox.acked(clientMsgId);
    this.waiters.get(clientMsgId)?.resolve(m);
    this.waiters.delete(clientMsgId);
    this.flush();
  }

  private refused(ev: EventOf<'error'>): void {
    const ref = ev.ref!;
    if (ref.startsWith('sync:')) {
      this.syncing.delete(ref.slice(5));
      return;
    }
    const outcome = this.outbox.refused(ref, ev.code, ev.retry_after);
    if (outcome === 'failed') {
      this.waiters.get(ref)?.reject(new SwitchboardError(422, ev.code, ev.message));
      this.waiters.delete(ref);
    }
    this.flush();
  }

  /** Batches `delivered` per conversation: one frame for a burst, up to the newest id. */
  private scheduleDelivered(m: Message): void {
    const prev = this.deliveredTimers.get(m.conversation_id);
    if (prev) clearTimeout(prev);
    this.deliveredTimers.set(
      m.conversation_id,
      setTimeout(() => {
        this.deliveredTimers.delete(m.conversation_id);
        const others = this.state.messages(m.conversation_id).filter((x) => x.sender_id !== this.userId);
        const newest = others.reduce<Message | undefined>((a, b) => (!a || compareIds(b.id, a.id) > 0 ? b : a), undefined);
        if (newest) this.delivered(m.conversation_id, newest.id);
      }, 150),
    );
  }
}
