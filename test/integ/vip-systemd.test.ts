import t from 'tap';
import { readFileSync } from 'node:fs';
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
