// useWebSocket: a conversation's chat socket, the way the marketplace frontend's hook works.
// The plan's own hook is not in this repository, so this one is written in its spirit: one
// socket per conversation on /ws/chat/{id}/, JSON frames
// {"type":"chat_message","message":"text"} and {"type":"typing_status","is_typing":bool} out,
// {"type":"chat_message","message":{...}} and typing_status in, and NO token: the site's cookie
// authenticates it, exactly as it did against Django Channels. Nothing in this file knows about
// Switchboard; the browser test (run.mjs) uses it unchanged.
//
// The only difference from a bundled build is the first line: React comes from the UMD global
// instead of `import { ... } from 'react'`.
const { useCallback, useEffect, useRef, useState } = window.React;

export function useWebSocket(conversationId, baseUrl) {
  const [messages, setMessages] = useState([]);
  const [isConnected, setIsConnected] = useState(false);
  const [typingUsers, setTypingUsers] = useState({});
  const socketRef = useRef(null);

  useEffect(() => {
    if (!conversationId) return undefined;
    const socket = new WebSocket(`${baseUrl}/ws/chat/${conversationId}/`);
    socketRef.current = socket;

    socket.onopen = () => setIsConnected(true);
    socket.onclose = () => setIsConnected(false);
    socket.onmessage = (event) => {
      const data = JSON.parse(event.data);
      switch (data.type) {
        case 'chat_message':
          setMessages((prev) => [...prev, data.message]);
          break;
        case 'typing_status':
          setTypingUsers((prev) => ({ ...prev, [data.user_id]: data.is_typing }));
          break;
        default:
          break;
      }
    };

    return () => socket.close();
  }, [conversationId, baseUrl]);

  const sendMessage = useCallback((text) => {
    const socket = socketRef.current;
    if (socket && socket.readyState === WebSocket.OPEN && text.trim()) {
      socket.send(JSON.stringify({ type: 'chat_message', message: text }));
    }
  }, []);

  const sendTyping = useCallback((isTyping) => {
    const socket = socketRef.current;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: 'typing_status', is_typing: isTyping }));
    }
  }, []);

  return { messages, isConnected, typingUsers, sendMessage, sendTyping };
}
