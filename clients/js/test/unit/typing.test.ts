/** Typing: one `is_typing: true` per refresh window however fast the keys come, `false` after idle. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient } from '../../src/client.js';

type Frame = { type: string; is_typing?: boolean };

/** A client whose socket only records what it is asked to send (no network in a unit test). */
function recordingClient(): { client: SwitchboardClient; sent: Frame[] } {
  const client = new SwitchboardClient({ token: 't', baseUrl: 'http://localhost:1', WebSocket: class {} as never });
  const sent: Frame[] = [];
  (client as unknown as { conn: { send(f: Frame): boolean } }).conn = {
    send: (f: Frame) => {
      sent.push(f);
      return true;
    },
  };
  return { client, sent };
}

describe('typing', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-12-07T12:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('sends true once for keystrokes in the same millisecond, then false after idle', () => {
    const { client, sent } = recordingClient();
    client.typing('1');
    client.typing('1'); // same millisecond: the clock has not moved
    expect(sent.map((f) => f.is_typing)).toEqual([true]);
    vi.advanceTimersByTime(1000);
    client.typing('1'); // within the refresh window: nothing more
    expect(sent.map((f) => f.is_typing)).toEqual([true]);
    vi.advanceTimersByTime(2500);
    client.typing('1'); // 3.5 s after the first: a refresh
    expect(sent.map((f) => f.is_typing)).toEqual([true, true]);
    vi.advanceTimersByTime(10_000);
    expect(sent.map((f) => f.is_typing)).toEqual([true, true, false]);
  });
});

describe('outbox retries', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a refused send that comes due while the client looks is still retried', () => {
    const { client, sent } = recordingClient();
    (client as unknown as { conn: { state: string } }).conn.state = 'open';
    const flush = () => (client as unknown as { flush(): void }).flush();
    const entry = client.outbox.add({ conversation_id: '1', text: 'a' });
    let clock = 1_000_000;
    const now = vi.spyOn(Date, 'now').mockImplementation(() => clock);
    client.outbox.takeSendable(clock); // in flight, then refused: due again at clock + 1000
    client.outbox.refused(entry.client_msg_id, 'rate_limited', 1);
    // The clock moves by 1 ms on every read, so the entry comes due between two reads.
    clock += 999;
    now.mockImplementation(() => clock++);
    flush();
    const timer = (client as unknown as { retryTimer: unknown }).retryTimer;
    expect(sent.length > 0 || timer !== null).toBe(true);
  });
});
