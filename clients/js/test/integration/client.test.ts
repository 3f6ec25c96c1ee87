/**
 * The client against the real server: connect, send/ack, sync after reconnect (no gaps, no
 * duplicates), outbox resend after a reconnect, token refresh and MessagePack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Message, SwitchboardClient, WebSocketCtor, WebSocketLike } from '../../src/index.js';
import { msgpackCodec } from '../../src/msgpack.js';
import { adminCall, client, devToken, newService, signedToken, startServer, until } from './server.js';
import type { Server } from './server.js';

let server: Server;
const open: SwitchboardClient[] = [];
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  for (const c of open) c.close();
  await server?.stop();
});

function track(c: SwitchboardClient): SwitchboardClient {
  open.push(c);
  return c.connect();
}

/** A `ws` whose frames the test can drop in either direction (a lossy network). */
function lossySocket() {
  const ctl = {
    dropOut: null as null | ((data: string) => boolean),
    dropIn: null as null | ((data: string) => boolean),
  };
  // A wrapper rather than a subclass: the client only uses the WebSocketLike surface.
  class Lossy implements WebSocketLike {
    private ws: WebSocket;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      this.ws = new WebSocket(url);
      this.ws.onopen = (e) => this.onopen?.(e);
      this.ws.onmessage = (e) => (ctl.dropIn?.(String(e.data)) ? undefined : this.onmessage?.(e));
      this.ws.onclose = (e) => this.onclose?.(e);
      this.ws.onerror = (e) => this.onerror?.(e);
    }
    get readyState() {
      return this.ws.readyState;
    }
    get binaryType() {
      return this.ws.binaryType;
    }
    set binaryType(t: string) {
      this.ws.binaryType = t as WebSocket['binaryType'];
    }
    send(data: string | Uint8Array) {
      if (!ctl.dropOut?.(String(data))) this.ws.send(data);
    }
    close(code?: number) {
      this.ws.close(code);
    }
  }
  return { ctl, Ctor: Lossy as WebSocketCtor };
}

/** Opens a conversation as the customer (HTTP) and returns its id. */
async function contact(c: SwitchboardClient, serviceId: string, text = 'Hi! Is this available?') {
  const { conversation } = await c.contact(serviceId, text);
  return conversation.id;
}

async function history(token: string, conversationId: string): Promise<Message[]> {
  const res = await fetch(`${server.http}/api/v1/conversations/${conversationId}/messages?limit=100`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  return ((await res.json()) as { items: Message[] }).items.reverse();
}

describe('client against the real server', () => {
  it('connects, sends and gets the ack; the other side receives it once', async () => {
    const svc = await newService(server);
    const cust = track(client(server, { token: await devToken(server, svc.customerId, 'customer') }));
    const prov = track(client(server, { token: await devToken(server, svc.providerId, 'provider') }));
    await until(() => cust.connectionState === 'open' && prov.connectionState === 'open', 'both open');
    const id = await contact(cust, svc.serviceId);
    await until(() => prov.state.messages(id).length === 1, 'provider sees the first message');
    // The provider's client sends `delivered` by itself; the customer gets the receipt.
    const first = cust.state.messages(id)[0];
    await until(() => cust.state.statusOf(first) === 'delivered', 'customer sees delivered');
    const reply = await prov.send(id, 'Yes, Tuesday works.');
    expect(reply.seq).toBe(2);
    expect(prov.outbox.all()).toHaveLength(0);
    await until(() => cust.state.messages(id).length === 2, 'customer sees the reply');
    expect(cust.state.messages(id).map((m) => m.text)).toEqual(['Hi! Is this available?', 'Yes, Tuesday works.']);
    // unread comes from the server's absolute numbers; reading sets it to 0 and sends a receipt
    await until(() => cust.state.unreadCount(id) === 1, 'customer unread 1');
    await cust.markRead(id);
    await until(() => cust.state.unreadCount(id) === 0 && cust.state.totalUnread() === 0, 'customer unread 0');
    await until(() => prov.state.statusOf(reply) === 'read', 'provider sees the read receipt');
  });

  it('syncs after a reconnect: no gaps, no duplicates', async () => {
    const svc = await newService(server);
    const provToken = await devToken(server, svc.providerId, 'provider');
    const seen: number[] = [];
    const cust = track(client(server, { token: await devToken(server, svc.customerId, 'customer'), backoff: { minMs: 1500, maxMs: 2000 } }));
    cust.on('chat_message', (e) => seen.push(e.message.seq));
    await until(() => cust.connectionState === 'open', 'open');
    const id = await contact(cust, svc.serviceId);
    const prov = track(client(server, { token: provToken }));
    await until(() => prov.connectionState === 'open', 'provider open');
    await prov.send(id, 'one');
    await until(() => cust.state.messages(id).length === 2, 'customer has 2');

    // The operator closes the customer's sockets (1008); while it is away, 5 more arrive.
    await adminCall(server, 'POST', `/admin/v1/users/${svc.customerId}/disconnect`);
    await until(() => cust.connectionState !== 'open', 'customer dropped');
    for (let i = 0; i < 5; i++) await prov.send(id, `while away ${i}`);
    await until(() => cust.connectionState === 'open', 'customer back');
    await until(() => cust.state.messages(id).length === 7, 'customer has all 7');
    expect(cust.state.messages(id).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(cust.state.watermark(id)).toBe(7);
    // Events may repeat (live + replay, or a sync racing the HTTP answer); the state never does.
    for (const seq of [3, 4, 5, 6, 7]) expect(seen).toContain(seq);
  });

  it('fills a gap the moment it shows (a lost live event)', async () => {
    const svc = await newService(server);
    const { ctl, Ctor } = lossySocket();
    const cust = track(client(server, { token: await devToken(server, svc.customerId, 'customer'), WebSocket: Ctor }));
    const prov = track(client(server, { token: await devToken(server, svc.providerId, 'provider') }));
    await until(() => cust.connectionState === 'open' && prov.connectionState === 'open', 'open');
    const id = await contact(cust, svc.serviceId);
    // Lose the live copy of seq 2 only; seq 3 then reveals the gap and a sync fills it.
    let lost = false;
    ctl.dropIn = (d) => !lost && d.includes('"chat_message"') && d.includes('"seq":2') && (lost = true);
    await prov.send(id, 'two');
    await prov.send(id, 'three');
    await until(() => cust.state.messages(id).length === 3, 'customer has 3');
    expect(lost).toBe(true);
    expect(cust.state.messages(id).map((m) => m.text)).toEqual(['Hi! Is this available?', 'two', 'three']);
  });

  it('resends the outbox after a reconnect; nothing is stored twice', async () => {
    const svc = await newService(server);
    const token = await devToken(server, svc.customerId, 'customer');
    const { ctl, Ctor } = lossySocket();
    const cust = track(client(server, { token, WebSocket: Ctor, backoff: { minMs: 300, maxMs: 500 } }));
    await until(() => cust.connectionState === 'open', 'open');
    const id = await contact(cust, svc.serviceId);

    // 1) the frame is lost on the way out; 2) the next one is stored but its ack is lost.
    ctl.dropOut = (d) => d.includes('lost on the way');
    const first = cust.send(id, 'lost on the way');
    await new Promise((r) => setTimeout(r, 300));
    expect(cust.outbox.all()).toHaveLength(1);
    ctl.dropOut = null;
    ctl.dropIn = (d) => d.includes('"ack"');
    await adminCall(server, 'POST', `/admin/v1/users/${svc.customerId}/disconnect`);
    await until(() => cust.connectionState !== 'open', 'dropped');
    await until(() => cust.connectionState === 'open', 'back');
    // Resent, stored, but the ack was dropped again: still pending.
    await new Promise((r) => setTimeout(r, 500));
    expect(cust.outbox.all()).toHaveLength(1);
    ctl.dropIn = null;
    await adminCall(server, 'POST', `/admin/v1/users/${svc.customerId}/disconnect`);
    const acked = await first;
    expect(acked.text).toBe('lost on the way');
    expect(cust.outbox.all()).toHaveLength(0);
    const stored = await history(token, id);
    expect(stored.map((m) => m.text)).toEqual(['Hi! Is this available?', 'lost on the way']);
    expect(cust.state.messages(id).map((m) => m.seq)).toEqual([1, 2]);
  });

  it('keeps order for a burst sent while disconnected', async () => {
    const svc = await newService(server);
    const token = await devToken(server, svc.customerId, 'customer');
    const cust = track(client(server, { token, backoff: { minMs: 1000, maxMs: 1200 } }));
    await until(() => cust.connectionState === 'open', 'open');
    const id = await contact(cust, svc.serviceId);
    await adminCall(server, 'POST', `/admin/v1/users/${svc.customerId}/disconnect`);
    await until(() => cust.connectionState !== 'open', 'dropped');
    const sends = ['a', 'b', 'c', 'd'].map((t) => cust.send(id, t));
    expect(cust.pending(id).map((e) => e.text)).toEqual(['a', 'b', 'c', 'd']);
    const acked = await Promise.all(sends);
    expect(acked.map((m) => m.seq)).toEqual([2, 3, 4, 5]);
    expect((await history(token, id)).map((m) => m.text)).toEqual(['Hi! Is this available?', 'a', 'b', 'c', 'd']);
  });

  it('refreshes the token on the open socket and after close 1008', async () => {
    const svc = await newService(server);
    let calls = 0;
    const cust = track(
      client(server, {
        // 33 s lifetime: the client refreshes 30 s before exp, i.e. after ~3 s.
        token: () => (calls++, signedToken(svc.customerId, 'customer', 33)),
        backoff: { minMs: 200, maxMs: 300 },
      }),
    );
    const readies: string[] = [];
    await until(() => cust.connectionState === 'open', 'open');
    cust.on('state', (s) => readies.push(s));
    expect(calls).toBe(1);
    await until(() => calls >= 2, 'refreshed before exp', 8000);
    expect(cust.connectionState).toBe('open');
    expect(readies).toEqual([]); // refreshed in place, no reconnect
    await adminCall(server, 'POST', `/admin/v1/users/${svc.customerId}/disconnect`);
    await until(() => calls >= 3 && cust.connectionState === 'open', 'new token after 1008');
    const id = await contact(cust, svc.serviceId);
    expect(id).toBeTruthy();
  });

  it('pages history back and shows a delete for everyone as a tombstone on both sides', async () => {
    const svc = await newService(server);
    const cust = track(client(server, { token: await devToken(server, svc.customerId, 'customer') }));
    const prov = track(client(server, { token: await devToken(server, svc.providerId, 'provider') }));
    await until(() => cust.connectionState === 'open' && prov.connectionState === 'open', 'open');
    const id = await contact(cust, svc.serviceId, 'm1');
    for (let i = 2; i <= 7; i++) await cust.send(id, `m${i}`);
    // A fresh client reads history in pages of 3: newest first, then older.
    const reader = track(client(server, { token: await devToken(server, svc.providerId, 'provider') }));
    expect(await reader.loadHistory(id, { limit: 3 })).toBe(true);
    expect(reader.state.messages(id).map((m) => m.seq)).toEqual([5, 6, 7]);
    await reader.loadHistory(id, { older: true, limit: 3 });
    await reader.loadHistory(id, { older: true, limit: 3 });
    expect(reader.state.messages(id).map((m) => m.text)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);

    const target = cust.state.messages(id)[6];
    await until(() => prov.state.messages(id).length === 7, 'provider has 7');
    await cust.deleteMessage(id, target.id, 'everyone');
    await until(() => prov.state.messages(id)[6]?.deleted === true, 'provider sees the tombstone');
    expect(prov.state.messages(id)[6]).toMatchObject({ seq: 7, text: '' });
    expect(cust.state.messages(id)[6].deleted).toBe(true);

    // Archiving is the caller's own: it answers the conversation, archived for them only.
    const archived = await cust.http.archive(id, true);
    expect(archived).toMatchObject({ id, archived: true });
    expect((await cust.http.listConversations({ archived: true })).items.map((c) => c.id)).toEqual([id]);
    expect((await prov.http.getConversation(id)).archived).toBe(false);
    const read = await prov.http.markRead(id);
    expect(read.unread_count).toBe(0);
    expect((await prov.http.unread()).total).toBe(0);
  });

  it('speaks MessagePack when asked', async () => {
    const svc = await newService(server);
    const cust = track(client(server, { token: await devToken(server, svc.customerId, 'customer'), codec: msgpackCodec }));
    const prov = track(client(server, { token: await devToken(server, svc.providerId, 'provider'), codec: msgpackCodec }));
    await until(() => cust.connectionState === 'open' && prov.connectionState === 'open', 'open');
    const id = await contact(cust, svc.serviceId);
    await until(() => prov.state.messages(id).length === 1, 'provider got it');
    const m = await prov.send(id, 'binary frames');
    expect(m.seq).toBe(2);
    await until(() => cust.state.messages(id).length === 2, 'customer got the reply');
  });
});
