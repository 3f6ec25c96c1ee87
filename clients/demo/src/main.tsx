/**
 * Switchboard demo: a service page with "Contact Provider" (customer), the customer's chats and
 * a provider inbox. Served on the engine's own origin (`/demo/`), so the API is called with
 * relative URLs and the socket at ws(s)://location.host/ws.
 *
 * Identity comes from the query string (`?as=customer&user=cust-1&name=Carl&service=svc-42`) or
 * the form; tokens are dev tokens (`POST /api/v1/dev/tokens`, local configuration only), minted
 * again whenever the client asks (the token-provider callback).
 */
import { StrictMode, useEffect, useMemo, useState } from 'react';
import type { ContactCard } from '@switchboard/client';
import { createRoot } from 'react-dom/client';
import { HttpApi, SwitchboardClient } from '@switchboard/client';
import { ContactButton, SwitchboardProvider, useSwitchboard } from '@switchboard/client/react';
import { ChatView, ConversationList } from './chat.js';

interface Identity {
  role: 'customer' | 'provider';
  user: string;
  name: string;
  service: string;
}

function identityFromUrl(): Identity | null {
  const q = new URLSearchParams(location.search);
  const role = q.get('as');
  const user = q.get('user');
  if ((role !== 'customer' && role !== 'provider') || !user) return null;
  return { role, user, name: q.get('name') || user, service: q.get('service') || '' };
}

function IdentityForm() {
  return (
    <form className="identity" method="get">
      <h1>Switchboard demo</h1>
      <p>Pick who you are (dev tokens; local configuration only).</p>
      <label>
        Role
        <select name="as" defaultValue="customer">
          <option value="customer">Customer</option>
          <option value="provider">Provider</option>
        </select>
      </label>
      <label>
        User id <input name="user" defaultValue="cust-1" required />
      </label>
      <label>
        Display name <input name="name" defaultValue="Carl" />
      </label>
      <label>
        Service id (customer) <input name="service" defaultValue="svc-42" />
      </label>
      <button type="submit">Enter</button>
    </form>
  );
}

function ConnectionIndicator() {
  const { connectionState } = useSwitchboard();
  return (
    <span className={`connection ${connectionState}`} role="status" data-testid="connection" data-state={connectionState}>
      {connectionState === 'open' ? '● Connected' : connectionState === 'offline' ? '○ Offline' : `◌ ${connectionState}…`}
    </span>
  );
}

/** The marketplace's service page, reduced to what the contact card tells. */
function ServicePage({ serviceId, onOpenChat }: { serviceId: string; onOpenChat(id: string): void }) {
  const { client } = useSwitchboard();
  const [card, setCard] = useState<ContactCard | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    client.http.contact(serviceId).then(setCard, (e: Error) => setError(e.message));
  }, [client, serviceId]);
  return (
    <section className="service-page" aria-label="Service">
      <h1>{card?.service.title ?? serviceId}</h1>
      {error && <p role="alert">{error}</p>}
      {card && (
        <p>
          by {card.provider.name} · {card.provider.online ? 'online now' : 'offline'}
        </p>
      )}
      <ContactButton serviceId={serviceId} onOpenChat={(c) => onOpenChat(c.id)} />
    </section>
  );
}

function App({ who }: { who: Identity }) {
  const [selected, setSelected] = useState<string | null>(null);
  const other = (c: { provider: { name: string }; customer: { name: string } }) =>
    who.role === 'provider' ? c.customer.name : c.provider.name;
  return (
    <>
      <header>
        <strong>Switchboard demo</strong> — {who.name} ({who.role}) <ConnectionIndicator />
      </header>
      <main className={who.role}>
        {who.role === 'customer' && who.service && <ServicePage serviceId={who.service} onOpenChat={setSelected} />}
        <div className="panes">
          <ConversationList role={who.role} selected={selected} onSelect={setSelected} />
          {selected ? <ChatView id={selected} title={other} /> : <p className="empty">Select a conversation.</p>}
        </div>
      </main>
    </>
  );
}

function Root() {
  const who = useMemo(identityFromUrl, []);
  const client = useMemo(() => {
    if (!who) return null;
    const api = new HttpApi({ baseUrl: '', token: async () => '' });
    return new SwitchboardClient({
      token: async () => (await api.devToken({ user_id: who.user, role: who.role, name: who.name })).token,
      storage: localStorage,
      storageKey: `switchboard.outbox.${who.user}`,
    });
  }, [who]);
  if (!who || !client) return <IdentityForm />;
  return (
    <SwitchboardProvider client={client}>
      <App who={who} />
    </SwitchboardProvider>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
