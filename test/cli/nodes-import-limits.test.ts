// `lanctl nodes import` reads bounded files: a device that never ends (/dev/zero) or a file over
// the limit is refused with a message naming it, before any daemon is asked (none runs here).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLanctl } from '../support/daemon.js';
import { IMPORT_BYTES_MAX } from '../../bin/commands-nodes.js';

t.test('import: an endless or huge file is refused, not read into memory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-import-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = ['--socket', join(dir, 'none.sock')];
  const endless = await runLanctl(['nodes', 'import', '/dev/zero', ...sock], { timeoutMs: 60_000 });
  t.equal(endless.code, 1);
  t.match(endless.stderr, /\/dev\/zero is larger than 8 MiB/);
  const big = join(dir, 'big.conf');
  writeFileSync(big, Buffer.alloc(IMPORT_BYTES_MAX + 1, 0x23));
  const huge = await runLanctl(['nodes', 'import', big, ...sock], { timeoutMs: 60_000 });
  t.equal(huge.code, 1);
  t.match(huge.stderr, /big\.conf is larger than 8 MiB/);
  const atLimit = join(dir, 'ok.conf');
  writeFileSync(atLimit, Buffer.alloc(IMPORT_BYTES_MAX, 0x23));
  const ok = await runLanctl(['nodes', 'import', atLimit, ...sock], { timeoutMs: 60_000 });
  t.equal(ok.code, 3, 'a file at the limit is read; then the stopped daemon is what fails (exit 3)');
});
