/** Outbox: retried until acked, in order per conversation, surviving a reload via storage. */
import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { backoffDelay } from '../../src/connection.js';

function memoryStorage() {
  const data = new Map<string, string>();
  return {
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => void data.set(k, v),
    removeItem: (k: string) => void data.delete(k),
    data,
  };
}

describe('outbox', () => {
  it('gives every entry a client_msg_id and sends one per conversation at a time, in order', () => {
    const o = new Outbox();
    const a = o.add({ conversation_id: '1', text: 'a' });
    const b = o.add({ conversation_id: '1', text: 'b' });
    const c = o.add({ conversation_id: '2', text: 'c' });
    expect(a.client_msg_id).not.toBe(b.client_msg_id);
    expect(o.takeSendable().map((e) => e.text)).toEqual(['a', 'c']);
    expect(o.takeSendable()).toEqual([]); // in flight: not sent twice
    o.acked(a.client_msg_id);
    expect(o.takeSendable().map((e) => e.text)).toEqual(['b']);
    expect(o.all().map((e) => e.client_msg_id)).toEqual([b.client_msg_id, c.client_msg_id]);
  });

  it('resends the same entries (same ids) after a reconnect until acked', () => {
    const o = new Outbox();
    const a = o.add({ conversation_id: '1', text: 'a' });
    expect(o.takeSendable()[0].client_msg_id).toBe(a.client_msg_id);
    o.resetInflight(); // socket dropped before the ack
    expect(o.takeSendable()[0].client_msg_id).toBe(a.client_msg_id);
    o.acked(a.client_msg_id);
    o.resetInflight();
    expect(o.takeSendable()).toEqual([]);
  });

  it('survives a reload through the storage adapter', () => {
    const storage = memoryStorage();
    const a = new Outbox(storage, 'k').add({ conversation_id: '1', text: 'a' });
    const reloaded = new Outbox(storage, 'k');
    expect(reloaded.all().map((e) => e.client_msg_id)).toEqual([a.client_msg_id]);
    reloaded.acked(a.client_msg_id);
    expect(storage.data.has('k')).toBe(false);
  });

  it('retries transient refusals later and fails permanent ones', () => {
    const o = new Outbox();
    const a = o.add({ conversation_id: '1', text: 'a' });
    const b = o.add({ conversation_id: '2', text: 'b' });
    o.takeSendable();
    expect(o.refused(a.client_msg_id, 'rate_limited', 2)).toBe('retry');
    expect(o.refused(b.client_msg_id, 'message_rejected')).toBe('failed');
    const now = Date.now();
    expect(o.takeSendable(now)).toEqual([]);
    expect(o.takeSendable(now + 2500).map((e) => e.text)).toEqual(['a']);
    expect(o.get(b.client_msg_id)?.failed).toBe(true);
  });

  it('ignores a corrupt stored value', () => {
    const storage = memoryStorage();
    storage.setItem('k', '{not json');
    expect(new Outbox(storage, 'k').all()).toEqual([]);
  });
});

describe('backoff', () => {
  it('is full jitter between 0.5 s and 20 s', () => {
    const b = { minMs: 500, maxMs: 20_000 };
    expect(backoffDelay(0, b, () => 0)).toBe(500);
    expect(backoffDelay(3, b, () => 0.999)).toBe(3996);
    expect(backoffDelay(30, b, () => 0.999999)).toBeLessThanOrEqual(20_000);
    expect(backoffDelay(30, b, () => 0.5)).toBe(10_000);
  });
});
