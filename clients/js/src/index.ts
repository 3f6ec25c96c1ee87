/** `@switchboard/client`: socket, HTTP API, outbox and UI state for the Switchboard chat engine. */
export { SwitchboardClient } from './client.js';
export type { ClientOptions } from './client.js';
export { Connection, backoffDelay } from './connection.js';
export type { Backoff, ConnectionState, TokenSource, WebSocketCtor, WebSocketLike } from './connection.js';
export { HttpApi, SwitchboardError } from './http.js';
export { Outbox, newClientMsgId } from './outbox.js';
export type { OutboxEntry, StorageAdapter } from './outbox.js';
export { ChatState, TYPING_TTL_MS } from './state.js';
export type { AddResult, Presence, Receipt } from './state.js';
export { jsonCodec, jwtPayload } from './codec.js';
export type { Codec } from './codec.js';
export * from './types.js';
