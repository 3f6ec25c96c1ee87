/**
 * "Contact Provider" button and its quick-contact modal: unstyled (class names `sb-*` only),
 * accessible (a labelled `role="dialog"` with `aria-modal`, Escape closes, focus moves into the
 * dialog and back to the button, the character counter is announced politely).
 *
 * The starter texts are the contact endpoint's `quick_messages` (configured per service); the
 * message is capped at 500 characters here, the quick-contact limit, though the engine allows
 * longer chat messages.
 */
import { useEffect, useId, useRef, useState } from 'react';
import type { ContactCard, Conversation } from '../types.js';
import { useSwitchboard } from './hooks.js';

export const QUICK_CONTACT_MAX = 500;

export interface QuickContactModalProps {
  serviceId: string;
  open: boolean;
  onClose(): void;
  /** "Open Full Chat": where the app shows the conversation (the modal closes first). */
  onOpenChat?(conversation: Conversation): void;
}

export function QuickContactModal({ serviceId, open, onClose, onOpenChat }: QuickContactModalProps) {
  const { client } = useSwitchboard();
  const [card, setCard] = useState<ContactCard | null>(null);
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const [sent, setSent] = useState<Conversation | null>(null);
  const textRef = useRef<HTMLTextAreaElement>(null);
  const titleId = useId();
  const counterId = useId();

  useEffect(() => {
    if (!open) return;
    setSent(null);
    setError(null);
    client.http.contact(serviceId).then(setCard, (e: Error) => setError(e.message));
    textRef.current?.focus();
  }, [client, serviceId, open]);

  if (!open) return null;
  const left = QUICK_CONTACT_MAX - text.length;
  const submit = async () => {
    if (!text.trim() || left < 0) return;
    setSending(true);
    setError(null);
    try {
      const { conversation } = await client.contact(serviceId, text.trim(), card?.provider.id);
      setSent(conversation);
      setText('');
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setSending(false);
    }
  };

  return (
    <div className="sb-modal-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div
        className="sb-modal"
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        onKeyDown={(e) => e.key === 'Escape' && onClose()}
      >
        <h2 id={titleId}>Contact {card?.provider.name ?? 'the provider'}</h2>
        {card && (
          <p className="sb-provider-status">
            {card.service.title} · {card.provider.online ? 'Online now' : 'Offline'}
            {card.provider.typical_response_minutes != null && ` · usually replies in ${card.provider.typical_response_minutes} min`}
          </p>
        )}
        {sent ? (
          <div className="sb-sent" role="status">
            <p>Message sent.</p>
            <button
              type="button"
              onClick={() => {
                onClose();
                onOpenChat?.(sent);
              }}
            >
              Open Full Chat
            </button>
          </div>
        ) : (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void submit();
            }}
          >
            {card && card.quick_messages.length > 0 && (
              <ul className="sb-quick-messages" aria-label="Quick messages">
                {card.quick_messages.map((q) => (
                  <li key={q}>
                    <button type="button" onClick={() => setText(q.slice(0, QUICK_CONTACT_MAX))}>
                      {q}
                    </button>
                  </li>
                ))}
              </ul>
            )}
            <label>
              Your message
              <textarea
                ref={textRef}
                value={text}
                maxLength={QUICK_CONTACT_MAX}
                aria-describedby={counterId}
                onChange={(e) => setText(e.target.value)}
              />
            </label>
            <p id={counterId} className="sb-counter" aria-live="polite">
              {text.length}/{QUICK_CONTACT_MAX}
            </p>
            <button type="submit" disabled={sending || !text.trim() || left < 0}>
              {sending ? 'Sending…' : 'Send'}
            </button>
          </form>
        )}
        {error && (
          <p className="sb-error" role="alert">
            {error}
          </p>
        )}
        {card?.whatsapp_url && (
          <a className="sb-whatsapp" href={card.whatsapp_url} target="_blank" rel="noopener noreferrer">
            Chat on WhatsApp
          </a>
        )}
        <button type="button" className="sb-close" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
    </div>
  );
}

export interface ContactButtonProps extends Omit<QuickContactModalProps, 'open' | 'onClose'> {
  label?: string;
}

/** The button a service page shows; opens the quick-contact modal. */
export function ContactButton({ label = 'Contact Provider', ...modal }: ContactButtonProps) {
  const [open, setOpen] = useState(false);
  const buttonRef = useRef<HTMLButtonElement>(null);
  return (
    <>
      <button ref={buttonRef} type="button" className="sb-contact-button" aria-haspopup="dialog" onClick={() => setOpen(true)}>
        {label}
      </button>
      <QuickContactModal
        {...modal}
        open={open}
        onClose={() => {
          setOpen(false);
          buttonRef.current?.focus();
        }}
      />
    </>
  );
}
