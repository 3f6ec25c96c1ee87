/**
 * Wire types of the Switchboard contract (shared/API.md + docs/API-NOTES.md).
 *
 * Ids are decimal strings on the wire (64-bit values do not fit a JS number), so they are
 * `string` here and must never be parsed with `Number()`. Compare ids with `compareIds`.
 */

/** Decimal-string 64-bit id (conversation, message, attachment, template). */
export type Id = string;
/** RFC 3339 UTC time with milliseconds. */
export type Time = string;

export type Role = 'customer' | 'provider' | 'admin';
export type MessageType = 'text' | 'image' | 'file' | 'system';
export type MessageStatus = 'sent' | 'delivered' | 'read';

export interface Attachment {
  id: Id;
  filename: string;
  content_type: string;
  size: number;
  /** Relative URL (`/api/v1/attachments/{id}`); needs the bearer token or cookie. */
  url: string;
}

export interface UploadedAttachment {
  id: Id;
  filename: string;
  content_type: string;
  size: number;
  sha256: string;
  scan?: 'clean' | 'unscanned' | 'off';
}

export interface Message {
  id: Id;
  conversation_id: Id;
  seq: number;
  sender_id: string;
  sender_name: string;
  message_type: MessageType;
  text: string;
  attachments: Attachment[];
  status: MessageStatus;
  created_at: Time;
  client_msg_id: string | null;
  /** Tombstone of a message deleted for everyone (or removed by a moderator). */
  deleted?: boolean;
}

export interface Party {
  id: string;
  name: string;
}

export interface Conversation {
  id: Id;
  service: { id: string; title: string };
  provider: Party;
  customer: Party;
  created_at: Time;
  last_message_at: Time | null;
  last_message_preview: string | null;
  unread_count: number;
  archived: boolean;
  last_read_message_id: Id | null;
  /** Server addition (API-NOTES): the conversation's highest seq. */
  last_seq?: number;
}

export interface ContactCard {
  service: { id: string; title: string };
  provider: {
    id: string;
    name: string;
    online: boolean;
    last_seen_at: Time | null;
    typical_response_minutes: number | null;
  };
  whatsapp_url: string | null;
  quick_messages: string[];
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface UnreadSummary {
  total: number;
  conversations: { conversation_id: Id; unread_count: number }[];
}

export interface Template {
  id: Id;
  text: string;
  position: number;
}

/** Frames the server sends on `/ws`. */
export type ServerEvent =
  | { type: 'ready'; user_id: string; session_id: string }
  | { type: 'chat_message'; message: Message }
  | { type: 'ack'; ref?: string; message: Message }
  | { type: 'typing_status'; conversation_id: Id; user_id: string; is_typing: boolean }
  | {
      type: 'receipt';
      conversation_id: Id;
      user_id: string;
      status: 'delivered' | 'read';
      up_to: Id;
      up_to_seq: number;
    }
  | { type: 'unread'; conversation_id: Id; unread_count: number; total_unread: number }
  | { type: 'presence'; user_id: string; online: boolean; last_seen_at: Time | null }
  | { type: 'conversation'; conversation: Conversation }
  | { type: 'message_deleted'; conversation_id: Id; message_id: Id }
  | { type: 'synced'; conversation_id: Id; last_seq: number; ref?: string }
  | { type: 'pong'; ref?: string }
  | { type: 'error'; code: string; message: string; ref?: string; retry_after?: number };

export type ServerEventType = ServerEvent['type'];
export type EventOf<T extends ServerEventType> = Extract<ServerEvent, { type: T }>;

/** Frames the client sends on `/ws`. */
export type ClientFrame =
  | { type: 'auth'; token: string }
  | {
      type: 'chat_message';
      conversation_id: Id;
      text: string;
      client_msg_id?: string;
      attachment_ids?: Id[];
      ref?: string;
    }
  | { type: 'typing_status'; conversation_id: Id; is_typing: boolean }
  | { type: 'mark_read'; conversation_id: Id; up_to?: Id; ref?: string }
  | { type: 'delivered'; conversation_id: Id; up_to: Id; ref?: string }
  | { type: 'sync'; conversation_id: Id; after_seq: number; ref?: string }
  | { type: 'ping'; ref?: string };

/** Compares two decimal-string ids numerically (ids are time-ordered). */
export function compareIds(a: Id, b: Id): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
