/**
 * Typed HTTP API (shared/API.md "Services directory", "Conversations", "Messages",
 * "Attachments", templates). Every call takes the token from the same provider the socket uses,
 * so a refreshed token is used at once. Errors are thrown as `SwitchboardError` carrying the
 * contract's `{"error": {"code","message"}}` and `Retry-After`.
 */
import type {
  ContactCard,
  Conversation,
  Id,
  Message,
  Page,
  Template,
  UnreadSummary,
  UploadedAttachment,
} from './types.js';

export class SwitchboardError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from `Retry-After` (429, some 503s). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'SwitchboardError';
  }
}

export interface HttpOptions {
  /** Origin of the API, e.g. `https://chat.example.com`; `''` means same origin (relative URLs). */
  baseUrl: string;
  /** The bearer token; `force` asks for a fresh one (after a 401). */
  token: (force?: boolean) => Promise<string>;
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | boolean | undefined | null>;

function qs(q: Query): string {
  const parts = Object.entries(q)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export class HttpApi {
  private fetchFn: typeof fetch;

  constructor(private opts: HttpOptions) {
    this.fetchFn = opts.fetch ?? ((...a) => globalThis.fetch(...a));
  }

  /** Low-level call: JSON in, JSON out (undefined for 204). */
  async request<T>(method: string, path: string, body?: unknown, init?: { raw?: BodyInit; auth?: boolean }): Promise<T> {
    try {
      return await this.attempt<T>(method, path, body, init, false);
    } catch (e) {
      // An expired token (clock skew, a tab asleep past exp): one retry with a fresh token.
      if (e instanceof SwitchboardError && e.status === 401 && init?.auth !== false) {
        return this.attempt<T>(method, path, body, init, true);
      }
      throw e;
    }
  }

  private async attempt<T>(method: string, path: string, body: unknown, init: { raw?: BodyInit; auth?: boolean } | undefined, fresh: boolean): Promise<T> {
    const headers: Record<string, string> = {};
    if (init?.auth !== false) headers.Authorization = `Bearer ${await this.opts.token(fresh)}`;
    let payload: BodyInit | undefined = init?.raw;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await this.fetchFn(`${this.opts.baseUrl}${path}`, { method, headers, body: payload });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    const data = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const err = data?.error ?? {};
      const ra = res.headers.get('retry-after');
      throw new SwitchboardError(res.status, err.code ?? 'http_error', err.message ?? `HTTP ${res.status}`, ra ? Number(ra) : undefined);
    }
    return data as T;
  }

  /** Dev tokens (local configuration only): `POST /api/v1/dev/tokens`, no auth. */
  devToken(user: { user_id: string; role: 'customer' | 'provider' | 'admin'; name: string; email?: string }): Promise<{ token: string }> {
    return this.request('POST', '/api/v1/dev/tokens', user, { auth: false });
  }

  /** What the "Contact Provider" button needs. */
  contact(serviceId: string): Promise<ContactCard> {
    return this.request('GET', `/api/v1/services/${encodeURIComponent(serviceId)}/contact`);
  }

  /** Customer's first contact (201) or an appended message to the existing conversation (200). */
  createConversation(body: {
    service_id: string;
    provider_id?: string;
    initial_message: string;
    client_msg_id?: string;
  }): Promise<{ conversation: Conversation; message: Message }> {
    return this.request('POST', '/api/v1/conversations', body);
  }

  listConversations(q: {
    archived?: boolean | 'all';
    limit?: number;
    cursor?: string;
    unread?: boolean;
    service_id?: string;
    q?: string;
  } = {}): Promise<Page<Conversation>> {
    return this.request('GET', `/api/v1/conversations${qs(q)}`);
  }

  getConversation(id: Id): Promise<Conversation> {
    return this.request('GET', `/api/v1/conversations/${id}`);
  }

  archive(id: Id, archived: boolean): Promise<Conversation> {
    return this.request('PATCH', `/api/v1/conversations/${id}`, { archived });
  }

  /** History page, newest first. `before` pages back from a message id. */
  messages(id: Id, q: { before?: Id; after?: Id; limit?: number; cursor?: string } = {}): Promise<Page<Message>> {
    return this.request('GET', `/api/v1/conversations/${id}/messages${qs(q)}`);
  }

  /** Sends over HTTP (the socket's outbox is usually better: it retries). */
  sendMessage(id: Id, body: { text?: string; attachment_ids?: Id[]; client_msg_id?: string }): Promise<Message> {
    return this.request('POST', `/api/v1/conversations/${id}/messages`, body);
  }

  markRead(id: Id, upTo?: Id): Promise<{ unread_count: number; last_read_message_id: Id | null }> {
    return this.request('POST', `/api/v1/conversations/${id}/mark-read`, upTo ? { up_to: upTo } : {});
  }

  typing(id: Id, isTyping: boolean): Promise<void> {
    return this.request('POST', `/api/v1/conversations/${id}/typing`, { is_typing: isTyping });
  }

  unread(): Promise<UnreadSummary> {
    return this.request('GET', '/api/v1/unread');
  }

  deleteMessage(id: Id, forWhom: 'me' | 'everyone' = 'me'): Promise<void> {
    return this.request('DELETE', `/api/v1/messages/${id}?for=${forWhom}`);
  }

  flag(id: Id, reason: string): Promise<{ message_id: Id; status: string }> {
    return this.request('POST', `/api/v1/messages/${id}/flag`, { reason });
  }

  /** Uploads a file (multipart field `file`); the server decides the type from the bytes. */
  upload(file: Blob, filename = (file as { name?: string }).name ?? 'upload'): Promise<UploadedAttachment> {
    const form = new FormData();
    form.append('file', file, filename);
    return this.request('POST', '/api/v1/attachments', undefined, { raw: form });
  }

  /** An attachment's bytes (with the bearer token, so `<img src>` cannot fetch it directly). */
  async attachment(id: Id): Promise<Blob> {
    const res = await this.fetchFn(`${this.opts.baseUrl}/api/v1/attachments/${id}`, {
      headers: { Authorization: `Bearer ${await this.opts.token()}` },
    });
    if (!res.ok) throw new SwitchboardError(res.status, 'attachment_not_found', `HTTP ${res.status}`);
    return res.blob();
  }

  templates(): Promise<{ items: Template[] }> {
    return this.request('GET', '/api/v1/templates');
  }

  createTemplate(text: string): Promise<Template> {
    return this.request('POST', '/api/v1/templates', { text });
  }

  updateTemplate(id: Id, patch: { text?: string; position?: number }): Promise<Template> {
    return this.request('PATCH', `/api/v1/templates/${id}`, patch);
  }

  deleteTemplate(id: Id): Promise<void> {
    return this.request('DELETE', `/api/v1/templates/${id}`);
  }
}
