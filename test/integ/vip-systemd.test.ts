import t from 'tap';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { requireLab } from '../support/netns.js';
import { repoPath } from '../support/paths.js';
import { runLanctl, scratchConfig } from '../support/daemon.js';

// The unit file releases the VIP before the daemon starts and after it stops (so a restarted daemon
// never inherits a stale VIP), with "-" so a node without a vip: block still starts; and the command
// it runs exists and succeeds on such a node without touching any interface.

t.test('systemd unit runs lanctl vip release before start and after stop, failures ignored', async (t) => {
  const unit = readFileSync(repoPath('systemd/lanha.service'), 'utf8');
  const lines = unit.split('\n').map((l) => l.trim());
  const pre = lines.find((l) => l.startsWith('ExecStartPre='));
  const post = lines.find((l) => l.startsWith('ExecStopPost='));
  t.match(pre ?? '', /^ExecStartPre=-\/usr\/bin\/node \/usr\/lib\/lanha\/dist\/bin\/lanctl\.js vip release --config \/etc\/lanha\/lanha\.yaml$/);
  t.match(post ?? '', /^ExecStopPost=-\/usr\/bin\/node \/usr\/lib\/lanha\/dist\/bin\/lanctl\.js vip release --config \/etc\/lanha\/lanha\.yaml$/);
});

t.test('lanctl vip release on a node without a vip: block does nothing and exits 0; a bad config exits 2', async (t) => {
  const plain = scratchConfig('node: { name: n1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }\n');
  const bad = scratchConfig('node: { name: n1 }\nvip: { address: 10.0.0.300/24, interface: eth0 }\n');
  try {
    const r = await runLanctl(['vip', 'release', '--config', plain.file]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /no vip: block; nothing to release/);
    const b = await runLanctl(['vip', 'release', '--config', bad.file]);
    t.equal(b.code, 2);
    t.match(b.stderr, /vip\.address/, 'the error names the key path');
  } finally {
    plain.cleanup();
    bad.cleanup();
  }
});

// systemd's own parser on the unit: a misspelt key or section is ignored with a warning, so the unit
// would run without it. Keys only newer systemd knows (RestartSteps, RestartMaxDelaySec: 254+) are
// the only warnings allowed.
t.test('systemd-analyze verify accepts the unit', async (t) => {
  if (!requireLab(t, ['systemd-analyze'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-unit-'));
  try {
    const unit = join(dir, 'lanha.service');
    copyFileSync(repoPath('systemd/lanha.service'), unit);
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 30_000 });
    t.equal(r.status, 0, r.stderr);
    const other = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/Unknown key '(RestartSteps|RestartMaxDelaySec)'/.test(l));
    t.same(other, [], 'no complaint but the keys only newer systemd knows');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
