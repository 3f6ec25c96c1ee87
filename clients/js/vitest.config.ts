import { defineConfig } from 'vitest/config';

// Integration tests start a real server per file and wait on real sockets: generous timeouts.
export default defineConfig({
  test: { testTimeout: 30_000, hookTimeout: 30_000 },
});
