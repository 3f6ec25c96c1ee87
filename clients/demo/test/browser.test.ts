/**
 * The demo in Chromium (Debian's /usr/bin/chromium through playwright-core: no browser download),
 * two contexts — customer and provider — against the real server behind a same-origin proxy.
 * One story, step by step: contact from the service page, reply, typing, read receipt, unread
 * badge, an attachment, and two messages sent while the customer is offline arriving once, in
 * order. Screenshots go to clients/demo/screenshots/ for the README.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { adminCall, startServer } from '../../js/test/integration/server.js';
import type { Server } from '../../js/test/integration/server.js';
import { startProxy } from './proxy.js';

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, '../screenshots');
const WAIT = { timeout: 10_000 };
/** A small real PNG (a green gradient), so the attachment is visible in the screenshots. */
function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    rows.push(Buffer.from([0, ...Array.from({ length: width }, (_, x) => [40, 120 + Math.round((x / width) * 120), 60 + y]).flat()]));
  }
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}
const PNG = png(120, 80);

let server: Server;
let proxy: { url: string; close(): Promise<void> };
let browser: Browser;
let custCtx: BrowserContext;
let provCtx: BrowserContext;
let cust: Page;
let prov: Page;

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  // Presence goes offline after a grace period (10 s by default, against flapping on reloads).
  server = await startServer({ SWITCHBOARD_REALTIME__PRESENCE_GRACE_SECS: '1' });
  proxy = await startProxy(join(here, '../dist'), server.http);
  await adminCall(server, 'PUT', '/admin/v1/services/svc-garden', {
    provider_id: 'prov-greta',
    title: 'Garden design',
    provider_name: 'Greta',
    whatsapp: '+49 151 2345 6789',
  });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  custCtx = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  provCtx = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  cust = await custCtx.newPage();
  prov = await provCtx.newPage();
  for (const [name, page] of [['customer', cust], ['provider', prov]] as const) {
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (e) => console.error(`[${name} page error]`, e));
  }
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await server?.stop();
});

const texts = (page: Page) => page.locator('[data-testid=message] .text').allInnerTexts();

describe('demo in Chromium: customer and provider', () => {
  it('both connect', async () => {
    await prov.goto(`${proxy.url}/demo/?as=provider&user=prov-greta&name=Greta`);
    await cust.goto(`${proxy.url}/demo/?as=customer&user=cust-carl&name=Carl&service=svc-garden`);
    await prov.locator('[data-testid=connection][data-state=open]').waitFor(WAIT);
    await cust.locator('[data-testid=connection][data-state=open]').waitFor(WAIT);
  });

  it('contacts the provider from the service page (quick messages, counter, WhatsApp)', async () => {
    await cust.getByRole('heading', { name: 'Garden design' }).waitFor(WAIT);
    await cust.getByRole('button', { name: 'Contact Provider' }).click();
    const dialog = cust.getByRole('dialog', { name: /Contact Greta/ });
    await dialog.waitFor(WAIT);
    const quick = dialog.getByRole('list', { name: 'Quick messages' }).getByRole('button');
    await expect.poll(() => quick.count()).toBe(4);
    expect(await dialog.getByRole('link', { name: 'Chat on WhatsApp' }).getAttribute('href')).toMatch(/^https:\/\/wa\.me\/4915123456789\?text=/);
    await quick.first().click();
    const first = await dialog.getByRole('textbox').inputValue();
    expect(first).toBe('Hi! Is this service available next week?');
    await expect.poll(() => dialog.locator('.sb-counter').innerText()).toBe(`${first.length}/500`);
    await dialog.getByRole('textbox').fill('x'.repeat(600));
    expect((await dialog.getByRole('textbox').inputValue()).length).toBe(500);
    await expect.poll(() => dialog.locator('.sb-counter').innerText()).toBe('500/500');
    await dialog.getByRole('textbox').fill(first);
    await cust.screenshot({ path: join(shots, 'quick-contact-modal.png') });
    await dialog.getByRole('button', { name: 'Send', exact: true }).click();
    await dialog.getByRole('button', { name: 'Open Full Chat' }).click();
    await expect.poll(() => texts(cust)).toEqual([first]);
  });

  it('the provider inbox shows an unread badge, which goes to 0 on reading', async () => {
    const badge = prov.locator('[data-testid=unread-badge]');
    await expect.poll(() => badge.getAttribute('data-count'), WAIT).toBe('1');
    await expect.poll(() => prov.locator('[data-testid=total-unread]').innerText()).toBe('1');
    await prov.screenshot({ path: join(shots, 'provider-inbox-unread.png') });
    expect(await prov.locator('[data-testid=conversation] .preview').innerText()).toBe('Hi! Is this service available next week?');
    await prov.locator('[data-testid=conversation]').first().click();
    await expect.poll(() => texts(prov)).toEqual(['Hi! Is this service available next week?']);
    await expect.poll(() => badge.getAttribute('data-count'), WAIT).toBe('0');
    await expect.poll(() => prov.locator('[data-testid=total-unread]').innerText()).toBe('0');
  });

  it('the customer sees the read receipt', async () => {
    await expect.poll(() => cust.locator('[data-testid=status]').last().getAttribute('data-status'), WAIT).toBe('read');
  });

  it('typing shows on the other side and clears when the reply is sent', async () => {
    await prov.locator('[data-testid=composer]').pressSequentially('Yes, Tuesday works', { delay: 20 });
    await expect.poll(() => cust.locator('[data-testid=typing]').innerText(), WAIT).toBe('typing…');
    await cust.screenshot({ path: join(shots, 'customer-chat-typing.png') });
    await prov.locator('[data-testid=send]').click();
    await expect.poll(() => texts(cust), WAIT).toEqual(['Hi! Is this service available next week?', 'Yes, Tuesday works']);
    await expect.poll(() => cust.locator('[data-testid=typing]').innerText(), WAIT).toBe('');
  });

  it('an image attachment reaches the provider', async () => {
    await cust.locator('[data-testid=file]').setInputFiles({ name: 'garden.png', mimeType: 'image/png', buffer: PNG });
    await cust.locator('[data-testid=composer]').fill('Here is my garden');
    await cust.locator('[data-testid=send]').click();
    await expect.poll(() => texts(prov), WAIT).toContain('Here is my garden');
    expect(await cust.locator('[role=alert]').allInnerTexts()).toEqual([]);
    await prov.locator('[data-testid=attachment-image]').waitFor(WAIT);
    await cust.locator('[data-testid=attachment-image]').waitFor(WAIT);
  });

  it('two messages sent offline arrive once, in order, after coming back', async () => {
    await custCtx.setOffline(true);
    await cust.locator('[data-testid=connection][data-state=offline]').waitFor(WAIT);
    await expect.poll(() => prov.locator('[data-testid=presence]').getAttribute('data-online'), WAIT).toBe('false');
    for (const t of ['offline one', 'offline two']) {
      await cust.locator('[data-testid=composer]').fill(t);
      await cust.locator('[data-testid=send]').click();
    }
    await expect.poll(() => cust.locator('[data-testid=pending]').count()).toBe(2);
    await cust.screenshot({ path: join(shots, 'customer-offline-pending.png') });
    await custCtx.setOffline(false);
    await cust.locator('[data-testid=connection][data-state=open]').waitFor({ timeout: 25_000 });
    await expect.poll(() => cust.locator('[data-testid=pending]').count(), WAIT).toBe(0);
    // Presence is sent to users who share a conversation: now the provider sees Carl come back.
    await expect.poll(() => prov.locator('[data-testid=presence]').getAttribute('data-online'), WAIT).toBe('true');
    const expected = ['Hi! Is this service available next week?', 'Yes, Tuesday works', 'Here is my garden', 'offline one', 'offline two'];
    await expect.poll(() => texts(prov), WAIT).toEqual(expected);
    await expect.poll(() => texts(cust), WAIT).toEqual(expected);
    await expect.poll(() => prov.locator('[data-testid=conversation] .preview').innerText()).toBe('offline two');
    const seqs = await prov.locator('[data-testid=message]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    await prov.screenshot({ path: join(shots, 'provider-chat.png') });
    await cust.screenshot({ path: join(shots, 'customer-chat.png') });
  });

  it('a message queued offline survives a page reload (localStorage outbox)', async () => {
    await custCtx.setOffline(true);
    await cust.locator('[data-testid=connection][data-state=offline]').waitFor(WAIT);
    await cust.locator('[data-testid=composer]').fill('sent before the reload');
    await cust.locator('[data-testid=send]').click();
    await expect.poll(() => cust.locator('[data-testid=pending]').count()).toBe(1);
    await cust.close(); // the tab goes away with the message unsent
    await custCtx.setOffline(false);
    cust = await custCtx.newPage();
    await cust.goto(`${proxy.url}/demo/?as=customer&user=cust-carl&name=Carl&service=svc-garden`);
    await cust.locator('[data-testid=connection][data-state=open]').waitFor(WAIT);
    await expect.poll(() => texts(prov), WAIT).toContain('sent before the reload');
    const all = await texts(prov);
    expect(all.filter((t) => t === 'sent before the reload')).toHaveLength(1);
    expect(all.at(-1)).toBe('sent before the reload');
  });
});
