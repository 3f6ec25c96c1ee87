/**
 * The demo's chat pieces: a conversation list with unread badges (the provider inbox and the
 * customer's "My chats") and a chat view with receipts, typing, attachments and pending sends.
 */
import { useEffect, useRef, useState } from 'react';
import type { Conversation, Message } from '@switchboard/client';
import { useConversation, useConversations, usePresence, useSwitchboard, useUnread } from '@switchboard/client/react';

export function ConversationList(props: { selected: string | null; onSelect(id: string): void; role: string }) {
  const { conversations, loading } = useConversations();
  const unread = useUnread();
  return (
    <nav className="inbox" aria-label={props.role === 'provider' ? 'Inbox' : 'My chats'}>
      <h2>
        {props.role === 'provider' ? 'Inbox' : 'My chats'}{' '}
        <span className="badge" data-testid="total-unread" data-count={unread.total} aria-label={`${unread.total} unread`}>
          {unread.total}
        </span>
      </h2>
      {loading && conversations.length === 0 && <p>Loading…</p>}
      <ul>
        {conversations.map((c) => (
          <li key={c.id}>
            <button
              type="button"
              data-testid="conversation"
              aria-current={c.id === props.selected ? 'true' : undefined}
              onClick={() => props.onSelect(c.id)}
            >
              <strong>{props.role === 'provider' ? c.customer.name : c.provider.name}</strong> · {c.service.title}
              <span className="preview">{c.last_message_preview}</span>
              <span className="badge" data-testid="unread-badge" data-count={unread.of(c.id)}>
                {unread.of(c.id)}
              </span>
            </button>
          </li>
        ))}
      </ul>
    </nav>
  );
}

const STATUS_LABEL: Record<Message['status'], string> = { sent: '✓ sent', delivered: '✓✓ delivered', read: '✓✓ read' };

function AttachmentView({ id, filename, contentType }: { id: string; filename: string; contentType: string }) {
  const { client } = useSwitchboard();
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    // Attachments need the bearer token, so they are fetched and shown from a blob URL.
    let revoke: string | null = null;
    client.http.attachment(id).then((b) => setUrl((revoke = URL.createObjectURL(b))), () => {});
    return () => {
      if (revoke) URL.revokeObjectURL(revoke);
    };
  }, [client, id]);
  if (!url) return <span>{filename}</span>;
  return contentType.startsWith('image/') ? (
    <img src={url} alt={filename} className="attachment" data-testid="attachment-image" />
  ) : (
    <a href={url} download={filename}>
      {filename}
    </a>
  );
}

export function ChatView({ id, title }: { id: string; title?: (c: Conversation) => string }) {
  const { userId } = useSwitchboard();
  const chat = useConversation(id);
  const [text, setText] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [error, setError] = useState<string | null>(null);
  const listRef = useRef<HTMLOListElement>(null);
  const c = chat.conversation;
  const presence = usePresence(c && (c.customer.id === userId ? c.provider.id : c.customer.id));
  const last = chat.messages[chat.messages.length - 1];
  const unreadFromOthers = last && last.sender_id !== userId;

  // Reading: the view is open, so whatever arrives from the other side is read.
  useEffect(() => {
    if (unreadFromOthers && document.visibilityState === 'visible') void chat.markRead();
  }, [last?.id, unreadFromOthers]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    listRef.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [chat.messages.length, chat.pending.length]);

  const submit = async () => {
    setError(null);
    try {
      const ids = file ? [await chat.upload(file)] : undefined;
      const sending = chat.send(text, ids);
      setText('');
      setFile(null);
      await sending;
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <section className="chat" aria-label="Conversation">
      <h2>
        {c && title ? title(c) : 'Conversation'}{' '}
        {presence && (
          <small className="presence" data-testid="presence" data-online={presence.online}>
            {presence.online ? '● online' : presence.last_seen_at ? `last seen ${new Date(presence.last_seen_at).toLocaleTimeString()}` : 'offline'}
          </small>
        )}
      </h2>
      <ol className="messages" ref={listRef} data-testid="messages">
        {chat.messages.map((m) => (
          <li key={m.seq} className={m.sender_id === userId ? 'mine' : 'theirs'} data-testid="message" data-seq={m.seq}>
            <span className="text">{m.deleted ? <em>message deleted</em> : m.text}</span>
            {m.attachments.map((a) => (
              <AttachmentView key={a.id} id={a.id} filename={a.filename} contentType={a.content_type} />
            ))}
            {m.sender_id === userId && (
              <span className="status" data-testid="status" data-status={chat.statusOf(m)}>
                {STATUS_LABEL[chat.statusOf(m)]}
              </span>
            )}
          </li>
        ))}
        {chat.pending.map((p) => (
          <li key={p.client_msg_id} className="mine pending" data-testid="pending">
            <span className="text">{p.text}</span>
            <span className="status">{p.failed ? `failed: ${p.error}` : 'sending…'}</span>
          </li>
        ))}
      </ol>
      <p className="typing" data-testid="typing" aria-live="polite">
        {chat.typingUsers.length > 0 ? 'typing…' : ''}
      </p>
      <form
        className="composer"
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim() || file) void submit();
        }}
      >
        <label className="visually-hidden" htmlFor="composer-text">
          Message
        </label>
        <input
          id="composer-text"
          data-testid="composer"
          value={text}
          autoComplete="off"
          placeholder="Write a message"
          onChange={(e) => {
            setText(e.target.value);
            if (e.target.value) chat.typing();
            else chat.stopTyping();
          }}
          onBlur={() => chat.stopTyping()}
        />
        <label className="file">
          Attach

          <input type="file" data-testid="file" accept="image/png,image/jpeg,image/gif,image/webp,application/pdf" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </label>
        <button type="submit" data-testid="send">
          Send
        </button>
      </form>
      {file && <p className="file-name">Attached: {file.name}</p>}
      {error && <p role="alert">{error}</p>}
    </section>
  );
}
