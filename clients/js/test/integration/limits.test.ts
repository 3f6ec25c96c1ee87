/**
 * Against a server with its real message budget on (burst 2): the outbox waits out
 * `rate_limited` and retries, so every message is stored once and in order. And typing stops by
 * itself after the user goes idle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message, SwitchboardClient } from '../../src/index.js';
import { client, devToken, newService, startServer, until } from './server.js';
import type { Server } from './server.js';

let server: Server;
const open: SwitchboardClient[] = [];
beforeAll(async () => {
  server = await startServer({ SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE: '60', SWITCHBOARD_LIMITS__MESSAGES_BURST: '2' });
});
afterAll(async () => {
  for (const c of open) c.close();
  await server?.stop();
});

describe('limits and timers', () => {
  it('retries rate-limited sends after retry_after; stored once, in order', async () => {
    const svc = await newService(server);
    const token = await devToken(server, svc.customerId, 'customer');
    const cust = client(server, { token });
    open.push(cust.connect());
    await until(() => cust.connectionState === 'open', 'open');
    const { conversation } = await cust.contact(svc.serviceId, 'first'); // spends 1 of the burst
    const refused: string[] = [];
    cust.on('error', (e) => refused.push(e.code));
    const acked = await Promise.all(['a', 'b', 'c', 'd'].map((t) => cust.send(conversation.id, t)));
    expect(refused).toContain('rate_limited');
    expect(acked.map((m) => m.text)).toEqual(['a', 'b', 'c', 'd']);
    const res = await fetch(`${server.http}/api/v1/conversations/${conversation.id}/messages`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const stored = ((await res.json()) as { items: Message[] }).items.reverse();
    expect(stored.map((m) => m.text)).toEqual(['first', 'a', 'b', 'c', 'd']);
  });

  it('typing shows on the other side and stops by itself after the user goes idle', async () => {
    const svc = await newService(server);
    const cust = client(server, { token: await devToken(server, svc.customerId, 'customer') });
    const prov = client(server, { token: await devToken(server, svc.providerId, 'provider') });
    open.push(cust.connect(), prov.connect());
    await until(() => cust.connectionState === 'open' && prov.connectionState === 'open', 'open');
    const { conversation } = await cust.contact(svc.serviceId, 'hello');
    const seen: boolean[] = [];
    prov.on('typing_status', (e) => seen.push(e.is_typing));
    cust.typing(conversation.id);
    cust.typing(conversation.id); // a second keystroke within 3 s sends nothing more
    await until(() => prov.state.typing(conversation.id).includes(svc.customerId), 'provider sees typing');
    await until(() => seen.includes(false), 'typing stopped after idle', 8000);
    expect(seen).toEqual([true, false]);
    expect(prov.state.typing(conversation.id)).toEqual([]);
  });
});
