/** ChatState: what a UI sees must not depend on the order or repetition of events. */
import { describe, expect, it } from 'vitest';
import { ChatState } from '../../src/state.js';
import type { Message } from '../../src/types.js';

const conv = '100';
function msg(seq: number, extra: Partial<Message> = {}): Message {
  return {
    id: String(1000 + seq),
    conversation_id: conv,
    seq,
    sender_id: 'cust-1',
    sender_name: 'Carl',
    message_type: 'text',
    text: `m${seq}`,
    attachments: [],
    status: 'sent',
    created_at: '2026-12-01T10:00:00.000Z',
    client_msg_id: null,
    ...extra,
  };
}

describe('messages', () => {
  it('orders by seq whatever the arrival order', () => {
    const s = new ChatState();
    for (const seq of [3, 1, 5, 2, 4]) s.addMessage(msg(seq));
    expect(s.messages(conv).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(s.watermark(conv)).toBe(5);
  });

  it('dedupes by seq: a later copy replaces, never duplicates', () => {
    const s = new ChatState();
    s.addMessage(msg(1));
    expect(s.addMessage(msg(1, { status: 'read' }))).toBe('updated');
    expect(s.messages(conv)).toHaveLength(1);
    expect(s.messages(conv)[0].status).toBe('read');
  });

  it('reports a gap and holds the watermark until it is filled', () => {
    const s = new ChatState();
    expect(s.addMessage(msg(1))).toBe('added');
    expect(s.addMessage(msg(3))).toBe('gap');
    expect(s.watermark(conv)).toBe(1);
    expect(s.addMessage(msg(2))).toBe('added');
    expect(s.watermark(conv)).toBe(3);
  });

  it('a newest history page sets the watermark even with deleted-for-me holes', () => {
    const s = new ChatState();
    s.addHistory(conv, [msg(9), msg(8), msg(6)], true);
    expect(s.watermark(conv)).toBe(9);
    expect(s.messages(conv).map((m) => m.seq)).toEqual([6, 8, 9]);
  });

  it('hidden messages stay hidden when sync replays them', () => {
    const s = new ChatState();
    s.addMessage(msg(1));
    s.addMessage(msg(2));
    s.hideMessage(conv, '1001');
    s.addMessage(msg(1));
    expect(s.messages(conv).map((m) => m.seq)).toEqual([2]);
    expect(s.watermark(conv)).toBe(2);
  });

  it('message_deleted leaves a tombstone in place (seq kept)', () => {
    const s = new ChatState();
    s.addMessage(msg(1, { attachments: [{ id: '9', filename: 'a.png', content_type: 'image/png', size: 1, url: '/x' }] }));
    s.apply({ type: 'message_deleted', conversation_id: conv, message_id: '1001' });
    expect(s.messages(conv)[0]).toMatchObject({ seq: 1, deleted: true, text: '', attachments: [] });
  });

  it('keeps the same array between changes (cheap for React)', () => {
    const s = new ChatState();
    s.addMessage(msg(1));
    expect(s.messages(conv)).toBe(s.messages(conv));
  });
});

describe('unread', () => {
  it('is replaced by unread events, never summed', () => {
    const s = new ChatState();
    s.apply({ type: 'unread', conversation_id: conv, unread_count: 2, total_unread: 2 });
    s.apply({ type: 'unread', conversation_id: conv, unread_count: 3, total_unread: 3 });
    s.apply({ type: 'unread', conversation_id: '200', unread_count: 1, total_unread: 4 });
    expect(s.unreadCount(conv)).toBe(3);
    expect(s.totalUnread()).toBe(4);
    s.apply({ type: 'unread', conversation_id: conv, unread_count: 0, total_unread: 1 });
    expect(s.unreadCount(conv)).toBe(0);
    expect(s.totalUnread()).toBe(1);
  });

  it('a summary replaces everything', () => {
    const s = new ChatState();
    s.setUnread(conv, 5, 5);
    s.setUnreadSummary(1, [{ conversation_id: '200', unread_count: 1 }]);
    expect(s.unreadCount(conv)).toBe(0);
    expect(s.totalUnread()).toBe(1);
  });
});

describe('receipts, typing, presence', () => {
  it('receipts raise status, never lower it, and ignore the sender', () => {
    const s = new ChatState();
    const mine = msg(2);
    s.addMessage(msg(1));
    s.addMessage(mine);
    s.setReceipt(conv, 'prov-1', 'delivered', 2);
    expect(s.statusOf(mine)).toBe('delivered');
    s.setReceipt(conv, 'prov-1', 'read', 2);
    s.setReceipt(conv, 'prov-1', 'delivered', 1);
    expect(s.statusOf(mine)).toBe('read');
    s.setReceipt(conv, 'cust-1', 'read', 5);
    expect(s.statusOf(msg(3))).toBe('sent');
  });

  it('typing expires by itself and clears on false', () => {
    let now = 0;
    const s = new ChatState(() => now);
    s.setTyping(conv, 'prov-1', true);
    expect(s.typing(conv)).toEqual(['prov-1']);
    now = 7000;
    expect(s.typing(conv)).toEqual([]);
    s.setTyping(conv, 'prov-1', true);
    s.setTyping(conv, 'prov-1', false);
    expect(s.typing(conv)).toEqual([]);
  });

  it('presence is the latest event', () => {
    const s = new ChatState();
    s.apply({ type: 'presence', user_id: 'p', online: true, last_seen_at: null });
    s.apply({ type: 'presence', user_id: 'p', online: false, last_seen_at: 'x' });
    expect(s.presenceOf('p')).toEqual({ online: false, last_seen_at: 'x' });
  });
});
