/**
 * React hooks over a `SwitchboardClient`. They read the client's state through
 * `useSyncExternalStore` (snapshot: the client's `changes` counter), so every component sees one
 * consistent state and re-renders only when something changed. No other dependency than React.
 */
import { createContext, createElement, useCallback, useContext, useEffect, useState, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import type { SwitchboardClient } from '../client.js';
import type { ConnectionState } from '../connection.js';
import type { OutboxEntry } from '../outbox.js';
import type { Conversation, Id, Message } from '../types.js';

const Ctx = createContext<SwitchboardClient | null>(null);

/** Makes `client` available to the hooks below; connects it on mount, closes on unmount. */
export function SwitchboardProvider(props: { client: SwitchboardClient; children?: ReactNode }) {
  const { client } = props;
  useEffect(() => {
    client.connect();
    return () => client.close();
  }, [client]);
  return createElement(Ctx.Provider, { value: client }, props.children);
}

function useClient(): SwitchboardClient {
  const client = useContext(Ctx);
  if (!client) throw new Error('Switchboard hooks need a <SwitchboardProvider client={...}>');
  return client;
}

/** Re-renders on every client change. */
function useChanges(client: SwitchboardClient): number {
  const subscribe = useCallback((fn: () => void) => client.on('change', fn), [client]);
  return useSyncExternalStore(subscribe, () => client.changes);
}

/** The client and its connection state (`open`, `reconnecting`, `offline`, ...). */
export function useSwitchboard(): { client: SwitchboardClient; connectionState: ConnectionState; userId: string | null } {
  const client = useClient();
  useChanges(client);
  return { client, connectionState: client.connectionState, userId: client.userId };
}

/**
 * The caller's conversations, most recent first; the first page is loaded on mount, `loadMore`
 * follows `next_cursor`, and socket events keep them live.
 */
export function useConversations(): {
  conversations: Conversation[];
  loading: boolean;
  error: Error | null;
  hasMore: boolean;
  reload(): void;
  loadMore(): void;
} {
  const client = useClient();
  useChanges(client);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const load = useCallback(
    (from?: string) => {
      setLoading(true);
      client.http
        .listConversations({ cursor: from })
        .then((page) => {
          client.state.setConversations(page.items);
          for (const c of page.items) client.watch(c.id);
          setCursor(page.next_cursor);
          setError(null);
        }, setError)
        .finally(() => setLoading(false));
    },
    [client],
  );
  useEffect(() => load(), [load]);
  return {
    conversations: client.state.conversations(),
    loading,
    error,
    hasMore: cursor !== null,
    reload: () => load(),
    loadMore: () => cursor && load(cursor),
  };
}

export interface UseConversation {
  conversation: Conversation | undefined;
  /** Stored messages ordered by seq. */
  messages: Message[];
  /** Queued, not yet acked (show as "sending…"; `failed` ones with their `error`). */
  pending: OutboxEntry[];
  /** User ids typing right now (other than me). */
  typingUsers: string[];
  statusOf(m: Message): Message['status'];
  send(text: string, attachmentIds?: Id[]): Promise<Message>;
  /** Call on each keystroke; refresh and stop are automatic. */
  typing(): void;
  stopTyping(): void;
  markRead(upTo?: Id): Promise<void>;
  loadOlder(): Promise<boolean>;
  upload(file: Blob): Promise<Id>;
}

/** One conversation: watched (synced on every reconnect) while mounted. */
export function useConversation(id: Id | null | undefined): UseConversation {
  const client = useClient();
  useChanges(client);
  useEffect(() => {
    if (!id) return;
    client.watch(id);
    client.loadHistory(id).catch(() => {});
    if (!client.state.conversation(id)) client.http.getConversation(id).then((c) => client.state.upsertConversation(c), () => {});
  }, [client, id]);
  const cid = id ?? '';
  return {
    conversation: id ? client.state.conversation(id) : undefined,
    messages: id ? client.state.messages(id) : [],
    pending: id ? client.pending(id) : [],
    typingUsers: id ? client.state.typing(id).filter((u) => u !== client.userId) : [],
    statusOf: (m) => client.state.statusOf(m),
    send: (text, attachmentIds) => client.send(cid, text, { attachmentIds }),
    typing: () => id && client.typing(id),
    stopTyping: () => id && client.stopTyping(id),
    markRead: (upTo) => client.markRead(cid, upTo),
    loadOlder: () => client.loadHistory(cid, { older: true }),
    upload: async (file) => (await client.http.upload(file)).id,
  };
}

/** Unread counts: `total` and a per-conversation lookup, replaced by the server's numbers. */
export function useUnread(): { total: number; of(conversationId: Id): number } {
  const client = useClient();
  useChanges(client);
  useEffect(() => {
    client.loadUnread().catch(() => {});
  }, [client]);
  return { total: client.state.totalUnread(), of: (cid) => client.state.unreadCount(cid) };
}

/** Presence of a user (from `presence` events), if known. */
export function usePresence(userId: string | undefined): { online: boolean; last_seen_at: string | null } | undefined {
  const client = useClient();
  useChanges(client);
  return userId ? client.state.presenceOf(userId) : undefined;
}
