/** `@switchboard/client/react`: hooks and unstyled components (React ≥ 18, optional peer). */
export { SwitchboardProvider, useConversation, useConversations, usePresence, useSwitchboard, useUnread } from './hooks.js';
export type { UseConversation } from './hooks.js';
export { ContactButton, QuickContactModal, QUICK_CONTACT_MAX } from './contact.js';
export type { ContactButtonProps, QuickContactModalProps } from './contact.js';
