/**
 * MessagePack frames (`/ws?format=msgpack`). A separate entry point so that apps which do not
 * use it never load `@msgpack/msgpack` (an optional peer dependency).
 */
import { decode, encode } from '@msgpack/msgpack';
import type { Codec } from './codec.js';
import type { ServerEvent } from './types.js';

export const msgpackCodec: Codec = {
  format: 'msgpack',
  encode: (frame) => encode(frame, { ignoreUndefined: true }),
  decode: (data) => {
    if (typeof data === 'string') return JSON.parse(data) as ServerEvent;
    return decode(data instanceof Uint8Array ? data : new Uint8Array(data)) as ServerEvent;
  },
};
