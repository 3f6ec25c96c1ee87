/**
 * Pending sends. Every send gets a `client_msg_id` before it leaves, and stays here until the
 * server acks it: the server dedupes on that id (per sender and conversation, 24 h), so resending
 * after a reconnect — or after a page reload, with a storage adapter — can never store a message
 * twice.
 *
 * Ordering: per conversation only the oldest entry is "in flight"; the next one goes out after
 * its ack. That keeps a burst typed while offline in the order it was typed, whatever the
 * server's internal concurrency.
 */
import type { Id } from './types.js';

/** The subset of `Storage` (localStorage / sessionStorage) the outbox needs. */
export interface StorageAdapter {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface OutboxEntry {
  client_msg_id: string;
  conversation_id: Id;
  text: string;
  attachment_ids?: Id[];
  /** Epoch ms when queued: lets a UI show pending messages in typing order. */
  queued_at: number;
  /** Last error code when the server refused it for good (then the entry is `failed`). */
  error?: string;
  failed?: boolean;
  /** Epoch ms before which it must not be resent (rate_limited / overloaded). */
  not_before?: number;
}

export function newClientMsgId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** Codes after which resending the same frame cannot succeed: the entry is marked failed. */
const PERMANENT = new Set([
  'text_required',
  'text_too_long',
  'text_invalid',
  'invalid_attachment',
  'too_many_attachments',
  'message_rejected',
  'conversation_not_found',
  'invalid_frame',
  'invalid_request',
  'forbidden_role',
]);

export class Outbox {
  private entries: OutboxEntry[] = [];
  private inflight = new Set<string>();
  private listeners = new Set<() => void>();

  constructor(
    private storage?: StorageAdapter,
    private key = 'switchboard.outbox',
  ) {
    const raw = storage?.getItem(key);
    if (raw) {
      try {
        const parsed = JSON.parse(raw) as OutboxEntry[];
        if (Array.isArray(parsed)) this.entries = parsed.filter((e) => e && e.client_msg_id);
      } catch {
        // A corrupt entry must not break the app; it is dropped.
      }
    }
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private save(): void {
    if (this.storage) {
      if (this.entries.length) this.storage.setItem(this.key, JSON.stringify(this.entries));
      else this.storage.removeItem(this.key);
    }
    for (const fn of [...this.listeners]) fn();
  }

  add(entry: Omit<OutboxEntry, 'queued_at' | 'client_msg_id'> & { client_msg_id?: string }): OutboxEntry {
    const full: OutboxEntry = { ...entry, client_msg_id: entry.client_msg_id ?? newClientMsgId(), queued_at: Date.now() };
    this.entries.push(full);
    this.save();
    return full;
  }

  /** Everything not yet acked, in queue order (failed ones included, flagged). */
  all(): OutboxEntry[] {
    return this.entries;
  }

  pending(conversationId: Id): OutboxEntry[] {
    return this.entries.filter((e) => e.conversation_id === conversationId);
  }

  get(clientMsgId: string): OutboxEntry | undefined {
    return this.entries.find((e) => e.client_msg_id === clientMsgId);
  }

  /**
   * The entries to put on the wire now: per conversation, the oldest unfailed entry, if it is not
   * already in flight and not held back by a retry delay. Marks them in flight.
   */
  takeSendable(now = Date.now()): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    const seen = new Set<Id>();
    for (const e of this.entries) {
      if (e.failed || seen.has(e.conversation_id)) continue;
      seen.add(e.conversation_id);
      if (this.inflight.has(e.client_msg_id)) continue;
      if (e.not_before && e.not_before > now) continue;
      this.inflight.add(e.client_msg_id);
      out.push(e);
    }
    return out;
  }

  /** The socket dropped: nothing is in flight any more, everything unacked goes again. */
  resetInflight(): void {
    this.inflight.clear();
  }

  /** The server stored it (ack, or a 200/201 over HTTP). */
  acked(clientMsgId: string): OutboxEntry | undefined {
    const i = this.entries.findIndex((e) => e.client_msg_id === clientMsgId);
    this.inflight.delete(clientMsgId);
    if (i < 0) return undefined;
    const [e] = this.entries.splice(i, 1);
    this.save();
    return e;
  }

  /**
   * The server refused it. Permanent refusals mark the entry failed (kept, so the UI can show it
   * and offer `discard`); anything else (rate_limited, overloaded, store_unavailable) is retried
   * after `retryAfterS` seconds (1 s if not given).
   */
  refused(clientMsgId: string, code: string, retryAfterS?: number): 'failed' | 'retry' | undefined {
    const e = this.get(clientMsgId);
    this.inflight.delete(clientMsgId);
    if (!e) return undefined;
    e.error = code;
    if (PERMANENT.has(code)) {
      e.failed = true;
      this.save();
      return 'failed';
    }
    e.not_before = Date.now() + Math.max(1, retryAfterS ?? 1) * 1000;
    this.save();
    return 'retry';
  }

  /** Removes an entry (a failed send the user gave up on). */
  discard(clientMsgId: string): void {
    this.acked(clientMsgId);
  }

  /** Earliest `not_before` in the future, so the client knows when to try again. */
  nextRetryAt(now = Date.now()): number | undefined {
    let best: number | undefined;
    for (const e of this.entries) {
      if (!e.failed && e.not_before && e.not_before > now) best = best === undefined ? e.not_before : Math.min(best, e.not_before);
    }
    return best;
  }
}
