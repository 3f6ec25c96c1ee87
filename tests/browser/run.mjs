// Drives Debian's Chromium (through playwright-core, which brings no browser of its own) against
// a running Switchboard. Started by tests/integration/browser.rs, which serves page/ from two
// origins on 127.0.0.1 (SB_SITE is in http.allowed_origins, SB_OTHER_SITE is not), starts the
// engine on a third port with cookie auth on, and checks the store afterwards.
//
// Both sites are the same *site* as the engine (cookies ignore ports, as they ignore the
// subdomain of www.example.com vs chat.example.com), so the browser sends the engine's cookie from
// both: what refuses the other origin is the engine, not the browser.
//
// Prints one "ok - ..." line per check; exits 1 at the first failed one.
import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const API = env('SB_API');
const SITE = env('SB_SITE');
const OTHER_SITE = env('SB_OTHER_SITE');
const CONVERSATION = env('SB_CONVERSATION');
const CUSTOMER_TOKEN = env('SB_CUSTOMER_TOKEN');
const PROVIDER_TOKEN = env('SB_PROVIDER_TOKEN');
const PROVIDER_ID = env('SB_PROVIDER_ID');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = { timeout: 10_000 };

function check(ok, what, detail) {
  if (!ok) {
    throw new Error(`FAILED: ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
  console.log(`ok - ${what}`);
}

// What the provider does from its own dashboard (here: Node, with its bearer token).
async function asProvider(path, body) {
  const res = await fetch(`${API}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${PROVIDER_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`provider POST ${path}: ${res.status} ${await res.text()}`);
}

// Every socket a page opens, with what it sent and how it ended.
function recordSockets(page) {
  const sockets = [];
  page.on('websocket', (ws) => {
    const rec = { url: ws.url(), sent: [], errors: [], closed: false };
    ws.on('framesent', (f) => rec.sent.push(String(f.payload)));
    ws.on('socketerror', (e) => rec.errors.push(String(e)));
    ws.on('close', () => {
      rec.closed = true;
    });
    sockets.push(rec);
  });
  return sockets;
}

// The page's own cross-origin calls: a bearer token (preflighted: Authorization), a cookie read,
// a cookie write (preflighted: JSON), and a form-like cookie POST that needs no preflight (what a
// CSRF attack sends). Each answers {status, body} or {error} when the browser blocked it.
function callApi(page) {
  return page.evaluate(
    async ({ api, conversation, bearer }) => {
      const attempt = async (url, init) => {
        try {
          const res = await fetch(url, init);
          return { status: res.status, body: await res.json().catch(() => null) };
        } catch (e) {
          return { error: String(e) };
        }
      };
      const messages = `${api}/api/v1/conversations/${conversation}/messages`;
      return {
        bearer: await attempt(`${api}/api/v1/conversations`, {
          headers: { Authorization: `Bearer ${bearer}` },
        }),
        cookieRead: await attempt(messages, { credentials: 'include' }),
        cookieWrite: await attempt(`${api}/api/v1/conversations/${conversation}/mark-read`, {
          method: 'POST',
          credentials: 'include',
          headers: { 'Content-Type': 'application/json' },
          body: '{}',
        }),
        simplePost: await attempt(messages, {
          method: 'POST',
          mode: 'no-cors',
          credentials: 'include',
          headers: { 'Content-Type': 'text/plain' },
          body: JSON.stringify({ text: `simple POST from ${location.origin}` }),
        }),
      };
    },
    { api: API, conversation: CONVERSATION, bearer: PROVIDER_TOKEN },
  );
}

const chatUrl = (site) =>
  `${site}/page/index.html?api=${encodeURIComponent(API)}&conversation=${CONVERSATION}`;

// Playwright gives the browser a fresh profile (user-data-dir) of its own and removes it after.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  timeout: 60_000,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const context = await browser.newContext();
  // The marketplace's login left its access token in an HttpOnly cookie on the engine's host.
  await context.addCookies([
    { name: 'access_token', value: CUSTOMER_TOKEN, url: API, httpOnly: true, sameSite: 'Lax' },
  ]);

  // --- The site, an allowed origin. ---
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e}`));
  const sockets = recordSockets(page);
  await page.goto(chatUrl(SITE));

  const api = await callApi(page);
  const items = (r) => (r.body && r.body.items) || [];
  check(
    api.bearer.status === 200 && items(api.bearer).some((c) => c.id === CONVERSATION),
    'a page on another origin lists conversations with a bearer token (preflight passed)',
    api.bearer,
  );
  check(
    api.cookieRead.status === 200 && items(api.cookieRead).some((m) => m.text === 'hello'),
    'it reads history with the cookie (credentialed CORS)',
    api.cookieRead,
  );
  check(
    api.cookieWrite.status === 200 && api.cookieWrite.body.unread_count === 0,
    'it marks the conversation read with the cookie (preflighted POST)',
    api.cookieWrite,
  );

  await page.waitForSelector('#chat[data-connected="true"]', WAIT);
  check(true, "the hook's socket opened with nothing but the cookie");
  await page.fill('#draft', 'hello from the hook');
  await page.click('#send');
  await page.waitForSelector('#messages li:has-text("hello from the hook")', WAIT);
  check(true, 'the hook sent a message and got it back from the server');

  await asProvider(`/api/v1/conversations/${CONVERSATION}/typing`, { is_typing: true });
  await page.waitForSelector(`#typing:has-text("${PROVIDER_ID} is typing")`, WAIT);
  check(true, 'the hook shows the provider typing');
  await asProvider(`/api/v1/conversations/${CONVERSATION}/messages`, {
    text: 'answer from the provider',
  });
  await page.waitForSelector(
    `#messages li[data-sender="${PROVIDER_ID}"]:has-text("answer from the provider")`,
    WAIT,
  );
  check(true, "the hook received the provider's answer");

  // Past the engine's auth timeout (1 s in this test): the socket that sent no token stays.
  await page.waitForTimeout(2_000);
  check(
    (await page.getAttribute('#chat', 'data-connected')) === 'true',
    'the socket is still open after the auth timeout',
  );
  check(sockets.length === 1, 'the hook opened one socket', sockets);
  const [socket] = sockets;
  check(
    new URL(socket.url).search === '' && !socket.url.includes(CUSTOMER_TOKEN),
    'no token in the socket URL',
    socket.url,
  );
  check(
    socket.sent.every((f) => !f.includes(CUSTOMER_TOKEN) && !f.includes('"auth"')),
    'no token in any frame the hook sent',
    socket.sent,
  );
  await page.close();

  // --- The same page on an origin that is not allowed. ---
  const other = await context.newPage();
  const otherSockets = recordSockets(other);
  const consoleLines = [];
  other.on('console', (m) => consoleLines.push(m.text()));
  await other.goto(chatUrl(OTHER_SITE));

  const refused = await callApi(other);
  for (const name of ['bearer', 'cookieRead', 'cookieWrite']) {
    check(refused[name].error !== undefined, `from the other origin, ${name} is blocked`, refused[name]);
  }

  const deadline = Date.now() + 10_000;
  while (
    Date.now() < deadline &&
    !(otherSockets.length && (otherSockets[0].errors.length || otherSockets[0].closed))
  ) {
    await other.waitForTimeout(50);
  }
  const why = [...(otherSockets[0] ? otherSockets[0].errors : []), ...consoleLines].join(' | ');
  check(otherSockets.length === 1 && /403/.test(why), "the hook's socket is refused with 403", why);
  // Had the engine upgraded it, onopen would have fired by now (the cookie was valid).
  await other.waitForTimeout(500);
  check(
    (await other.evaluate(() => window.everConnected === true)) === false &&
      (await other.getAttribute('#chat', 'data-connected')) === 'false',
    'the hook never connected from the other origin',
  );
  check((await other.locator('#messages li').count()) === 0, 'and received nothing');
  console.log('all browser checks passed');
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
