// A service worker for Switchboard's Web Push (docs/API-NOTES.md, "Web Push"): shows each push
// as a notification, one per conversation, and opens or focuses the conversation on click.
// Copy it to your site's root and register it with navigator.serviceWorker.register("/sw.js");
// change `url` below to where your site shows a conversation.
// tests/integration/browser.rs runs this file in Chromium with a push the server made.
self.addEventListener("push", (event) => {
  const p = event.data ? event.data.json() : {};
  if (p.type !== "chat_message") return;
  event.waitUntil(
    self.registration.showNotification(p.sender_name || "New message", {
      body: p.preview || "You have a new message",
      tag: `conversation-${p.conversation_id}`, // one notification per conversation
      renotify: true,
      data: { url: `/messages/${p.conversation_id}` },
    })
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data.url;
  event.waitUntil(
    clients.matchAll({ type: "window", includeUncontrolled: true }).then((tabs) => {
      const open = tabs.find((t) => new URL(t.url).pathname === url);
      return open ? open.focus() : clients.openWindow(url);
    })
  );
});
