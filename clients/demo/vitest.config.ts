import { defineConfig } from 'vitest/config';

// One browser story in sequence, against a real server: long timeouts, no parallel files.
export default defineConfig({
  test: { testTimeout: 30_000, hookTimeout: 40_000, fileParallelism: false },
});
