// A chat box as the marketplace renders it, around the unchanged hook. The engine's address and
// the conversation come from the query string; the page never sees a token (the cookie is
// HttpOnly). `window.everConnected` lets the test tell "refused" from "connected, then closed".
import { useWebSocket } from './useWebSocket.js';

const { createElement: h, useEffect, useState } = window.React;
const params = new URLSearchParams(window.location.search);
const WS_BASE = params.get('api').replace(/^http/, 'ws');

function Chat({ conversationId }) {
  const { messages, isConnected, typingUsers, sendMessage, sendTyping } = useWebSocket(
    conversationId,
    WS_BASE,
  );
  const [draft, setDraft] = useState('');
  useEffect(() => {
    if (isConnected) window.everConnected = true;
  }, [isConnected]);
  const typing = Object.keys(typingUsers).filter((user) => typingUsers[user]);

  const submit = (event) => {
    event.preventDefault();
    sendMessage(draft);
    sendTyping(false);
    setDraft('');
  };
  return h(
    'div',
    { id: 'chat', 'data-connected': String(isConnected) },
    h(
      'ul',
      { id: 'messages' },
      messages.map((m) => h('li', { key: m.id, 'data-sender': m.sender_id }, m.text)),
    ),
    h('p', { id: 'typing' }, typing.length ? `${typing.join(', ')} is typing…` : ''),
    h(
      'form',
      { onSubmit: submit },
      h('input', {
        id: 'draft',
        value: draft,
        onChange: (event) => {
          setDraft(event.target.value);
          sendTyping(true);
        },
      }),
      h('button', { id: 'send', type: 'submit', disabled: !isConnected }, 'Send'),
    ),
  );
}

window.ReactDOM.createRoot(document.getElementById('root')).render(
  h(Chat, { conversationId: params.get('conversation') }),
);
