/**
 * How frames are put on the socket. JSON text frames by default; `msgpackCodec` (from
 * `@switchboard/client/msgpack`) switches the socket to `?format=msgpack` binary frames, which
 * the server supports with exactly the same field names (API.md "WebSocket").
 */
import type { ClientFrame, ServerEvent } from './types.js';

export interface Codec {
  /** Appended to the socket URL as `?format=` when set. */
  format?: 'msgpack';
  encode(frame: ClientFrame): string | Uint8Array;
  decode(data: string | ArrayBuffer | Uint8Array): ServerEvent;
}

export const jsonCodec: Codec = {
  encode: (frame) => JSON.stringify(frame),
  decode: (data) => {
    if (typeof data === 'string') return JSON.parse(data) as ServerEvent;
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    return JSON.parse(new TextDecoder().decode(bytes)) as ServerEvent;
  },
};

/** Reads the JWT payload (no verification: the server verifies; the client only needs `exp`). */
export function jwtPayload(token: string): { exp?: number; sub?: string; user_id?: string; role?: string; name?: string } {
  try {
    const part = token.split('.')[1] ?? '';
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}
