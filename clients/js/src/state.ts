/**
 * UI state a chat screen needs, kept from server events: messages per conversation ordered by
 * `seq`, unread counts, receipts, typing and presence.
 *
 * Pure and synchronous (no socket, no timers except the clock passed in), so it is unit-tested
 * on its own. The client feeds it every event; a UI reads snapshots and subscribes to `change`.
 *
 * Gap detection: each conversation has a `watermark`, the highest seq up to which the client has
 * seen everything. A message with `seq > watermark + 1` is kept but the watermark does not move,
 * and `addMessage` reports the gap so the client can `sync` from the watermark. That makes the
 * result independent of the order events arrive in: duplicates replace, gaps get filled.
 */
import { compareIds } from './types.js';
import type { Conversation, Id, Message, ServerEvent } from './types.js';

/** How long a `typing_status: true` counts without a refresh (the server expires at ~6 s). */
export const TYPING_TTL_MS = 6000;

export interface Receipt {
  /** Highest seq the other side's device received (`delivered`). */
  deliveredSeq: number;
  /** Highest seq the other side read. */
  readSeq: number;
}

export interface Presence {
  online: boolean;
  last_seen_at: string | null;
}

interface ConvState {
  bySeq: Map<number, Message>;
  watermark: number;
  /** Seqs the caller deleted for themself (replayed by `sync`, hidden from the list). */
  hidden: Set<number>;
  sorted: Message[] | null;
  receipts: Map<string, Receipt>;
  typing: Map<string, number>;
}

export type AddResult = 'added' | 'updated' | 'gap';

export class ChatState {
  private convs = new Map<Id, ConvState>();
  private conversationInfo = new Map<Id, Conversation>();
  private conversationList: Conversation[] | null = null;
  private unread = new Map<Id, number>();
  private total = 0;
  private presence = new Map<string, Presence>();
  private listeners = new Set<() => void>();
  /** Bumped on every change; lets React's useSyncExternalStore compare cheaply. */
  version = 0;

  constructor(private now: () => number = Date.now) {}

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    this.version++;
    for (const fn of [...this.listeners]) fn();
  }

  private conv(id: Id): ConvState {
    let c = this.convs.get(id);
    if (!c) {
      c = { bySeq: new Map(), watermark: 0, hidden: new Set(), sorted: null, receipts: new Map(), typing: new Map() };
      this.convs.set(id, c);
    }
    return c;
  }

  // ---- messages ----------------------------------------------------------------------------

  /**
   * Adds or replaces a message (same seq = same message: a later copy wins, e.g. a tombstone).
   * Returns 'gap' when messages before it are missing, so the caller should `sync`.
   */
  addMessage(m: Message): AddResult {
    const c = this.conv(m.conversation_id);
    if (c.hidden.has(m.seq)) return 'updated'; // deleted for me: sync replays it, we hide it
    const existed = c.bySeq.has(m.seq);
    c.bySeq.set(m.seq, m);
    c.sorted = null;
    while (c.bySeq.has(c.watermark + 1) || c.hidden.has(c.watermark + 1)) c.watermark++;
    this.touchConversation(m);
    this.changed();
    if (existed) return 'updated';
    return m.seq > c.watermark ? 'gap' : 'added';
  }

  /**
   * Adds a page of history (HTTP, newest first or not). Deleted-for-me messages are absent from
   * HTTP history, so a page may legitimately skip seqs: when `isNewest` (no `before` cursor), the
   * watermark jumps to the page's highest seq, because everything older is either in later pages
   * or hidden for this user.
   */
  addHistory(conversationId: Id, messages: Message[], isNewest: boolean): void {
    const c = this.conv(conversationId);
    let max = 0;
    for (const m of messages) {
      c.bySeq.set(m.seq, m);
      max = Math.max(max, m.seq);
    }
    if (isNewest && max > c.watermark) c.watermark = max;
    while (c.bySeq.has(c.watermark + 1)) c.watermark++;
    c.sorted = null;
    this.changed();
  }

  /** Hides a message deleted for me (it keeps its seq so the watermark can pass it). */
  hideMessage(conversationId: Id, messageId: Id): void {
    const c = this.conv(conversationId);
    for (const [seq, m] of c.bySeq) {
      if (m.id === messageId) {
        c.bySeq.delete(seq);
        c.hidden.add(seq);
        c.sorted = null;
        this.changed();
        return;
      }
    }
  }

  /**
   * Replaces a message with a tombstone (`deleted: true`, empty text, no attachments), as the
   * server stores one for "delete for everyone" and moderator removals.
   */
  tombstone(conversationId: Id, messageId: Id): void {
    const c = this.conv(conversationId);
    for (const [seq, m] of c.bySeq) {
      if (m.id === messageId) {
        c.bySeq.set(seq, { ...m, text: '', attachments: [], message_type: 'system', deleted: true });
        c.sorted = null;
        this.changed();
        return;
      }
    }
  }

  /** The highest seq through which this client has everything: what `sync` asks after. */
  watermark(conversationId: Id): number {
    return this.convs.get(conversationId)?.watermark ?? 0;
  }

  /** Messages of a conversation ordered by seq. The same array until something changes. */
  messages(conversationId: Id): Message[] {
    const c = this.convs.get(conversationId);
    if (!c) return EMPTY;
    if (!c.sorted) c.sorted = [...c.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return c.sorted;
  }

  /** The oldest message held (where the next history page starts), if any. */
  oldest(conversationId: Id): Message | undefined {
    return this.messages(conversationId)[0];
  }

  // ---- conversations -----------------------------------------------------------------------

  setConversations(list: Conversation[]): void {
    for (const conv of list) this.conversationInfo.set(conv.id, conv);
    this.conversationList = null;
    this.changed();
  }

  upsertConversation(conv: Conversation): void {
    this.conversationInfo.set(conv.id, conv);
    this.conversationList = null;
    this.changed();
  }

  /**
   * Keeps a listed conversation's preview and ordering current: the server sends `conversation`
   * events for creations and per-user changes, not for every message.
   */
  private touchConversation(m: Message): void {
    const conv = this.conversationInfo.get(m.conversation_id);
    if (!conv || (conv.last_seq ?? 0) >= m.seq) return;
    this.conversationInfo.set(conv.id, {
      ...conv,
      last_seq: m.seq,
      last_message_at: m.created_at,
      last_message_preview: m.deleted ? '' : m.text.slice(0, 100),
    });
    this.conversationList = null;
  }

  conversation(id: Id): Conversation | undefined {
    return this.conversationInfo.get(id);
  }

  /** Known conversations, most recent activity first (as the server lists them). */
  conversations(): Conversation[] {
    if (!this.conversationList) {
      this.conversationList = [...this.conversationInfo.values()].sort((a, b) => {
        const ta = a.last_message_at ?? a.created_at;
        const tb = b.last_message_at ?? b.created_at;
        return ta < tb ? 1 : ta > tb ? -1 : compareIds(b.id, a.id);
      });
    }
    return this.conversationList;
  }

  // ---- unread: always replaced by the server's absolute numbers, never summed ---------------

  setUnread(conversationId: Id, count: number, total?: number): void {
    this.unread.set(conversationId, count);
    if (total !== undefined) this.total = total;
    this.changed();
  }

  setUnreadSummary(total: number, items: { conversation_id: Id; unread_count: number }[]): void {
    this.unread = new Map(items.map((i) => [i.conversation_id, i.unread_count]));
    this.total = total;
    this.changed();
  }

  unreadCount(conversationId: Id): number {
    return this.unread.get(conversationId) ?? this.conversationInfo.get(conversationId)?.unread_count ?? 0;
  }

  totalUnread(): number {
    return this.total;
  }

  // ---- receipts ----------------------------------------------------------------------------

  setReceipt(conversationId: Id, userId: string, status: 'delivered' | 'read', upToSeq: number): void {
    const c = this.conv(conversationId);
    const r = c.receipts.get(userId) ?? { deliveredSeq: 0, readSeq: 0 };
    // Receipts never go backwards; read implies delivered.
    const next = { ...r };
    if (status === 'read') next.readSeq = Math.max(r.readSeq, upToSeq);
    next.deliveredSeq = Math.max(r.deliveredSeq, status === 'delivered' ? upToSeq : next.readSeq);
    c.receipts.set(userId, next);
    this.changed();
  }

  /**
   * The status to show on `message`: the best of what it was stored with and what receipts from
   * anyone other than its sender say since.
   */
  statusOf(message: Message): Message['status'] {
    const c = this.convs.get(message.conversation_id);
    let best = message.status;
    if (!c) return best;
    for (const [userId, r] of c.receipts) {
      if (userId === message.sender_id) continue;
      if (r.readSeq >= message.seq) return 'read';
      if (r.deliveredSeq >= message.seq) best = 'delivered';
    }
    return best;
  }

  // ---- typing and presence -----------------------------------------------------------------

  setTyping(conversationId: Id, userId: string, isTyping: boolean): void {
    const c = this.conv(conversationId);
    if (isTyping) c.typing.set(userId, this.now() + TYPING_TTL_MS);
    else c.typing.delete(userId);
    this.changed();
  }

  /** Users typing in a conversation right now (expired entries dropped). */
  typing(conversationId: Id): string[] {
    const c = this.convs.get(conversationId);
    if (!c) return EMPTY_STR;
    const now = this.now();
    const out: string[] = [];
    for (const [user, until] of c.typing) {
      if (until > now) out.push(user);
      else c.typing.delete(user);
    }
    return out.length ? out : EMPTY_STR;
  }

  /** Call on a timer: drops expired typing entries and notifies if any were dropped. */
  expireTyping(): void {
    const now = this.now();
    let dropped = false;
    for (const c of this.convs.values()) {
      for (const [user, until] of c.typing) {
        if (until <= now) {
          c.typing.delete(user);
          dropped = true;
        }
      }
    }
    if (dropped) this.changed();
  }

  setPresence(userId: string, p: Presence): void {
    this.presence.set(userId, p);
    this.changed();
  }

  presenceOf(userId: string): Presence | undefined {
    return this.presence.get(userId);
  }

  // ---- one entry point for socket events -----------------------------------------------------

  /** Applies a server event; answers 'gap' when a `chat_message` revealed missing seqs. */
  apply(ev: ServerEvent): AddResult | undefined {
    switch (ev.type) {
      case 'chat_message':
      case 'ack':
        return this.addMessage(ev.message);
      case 'unread':
        this.setUnread(ev.conversation_id, ev.unread_count, ev.total_unread);
        return;
      case 'receipt':
        this.setReceipt(ev.conversation_id, ev.user_id, ev.status, ev.up_to_seq);
        return;
      case 'typing_status':
        this.setTyping(ev.conversation_id, ev.user_id, ev.is_typing);
        return;
      case 'presence':
        this.setPresence(ev.user_id, { online: ev.online, last_seen_at: ev.last_seen_at });
        return;
      case 'conversation':
        this.upsertConversation(ev.conversation);
        return;
      case 'message_deleted':
        // The event does not say "for me" or "for everyone"; a tombstone is right for the
        // latter and harmless for the former (the client hides what it deleted itself).
        this.tombstone(ev.conversation_id, ev.message_id);
        return;
      default:
        return;
    }
  }
}

const EMPTY: Message[] = [];
const EMPTY_STR: string[] = [];
