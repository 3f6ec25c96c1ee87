// `npm run check:demo`: rebuilds the demo into a temporary directory and fails if it differs
// from the committed dist/ (so the Rust build, which embeds dist/, never ships a stale demo).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'sb-demo-'));
execFileSync('npm', ['run', 'build', '-w', '@switchboard/client'], { cwd: join(here, '..'), stdio: 'inherit' });
execFileSync(process.execPath, [join(here, 'build.mjs'), tmp], { stdio: 'inherit' });
const dist = join(here, 'dist');
const names = new Set([...readdirSync(dist), ...readdirSync(tmp)]);
const differ = [...names].filter((n) => {
  try {
    return !readFileSync(join(dist, n)).equals(readFileSync(join(tmp, n)));
  } catch {
    return true;
  }
});
rmSync(tmp, { recursive: true, force: true });
if (differ.length) {
  console.error(`clients/demo/dist is stale (${differ.join(', ')}): run \`npm run build:demo\` and commit dist/.`);
  process.exit(1);
}
console.log('clients/demo/dist is up to date');
