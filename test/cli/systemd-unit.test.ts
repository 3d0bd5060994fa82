import t from 'tap';
import { readFileSync } from 'node:fs';
import { repoPath } from '../support/paths.js';
import { DAEMON_NODE_FLAGS } from '../../lib/memory.js';

// The unit file is operator-facing configuration: check the directives the design depends on.
t.test('systemd unit has the required directives and not MemoryDenyWriteExecute', async (t) => {
  const unit = readFileSync(repoPath('systemd/lanha.service'), 'utf8');
  const directives = new Map<string, string>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) directives.set(m[1]!, m[2]!);
  }
  t.equal(directives.get('Type'), 'notify');
  t.equal(directives.get('NotifyAccess'), 'all', 'systemd-notify runs as a child');
  t.ok(directives.has('WatchdogSec'));
  t.equal(directives.get('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN');
  t.equal(directives.get('NoNewPrivileges'), 'yes');
  t.equal(directives.get('ProtectSystem'), 'strict');
  t.equal(directives.get('Restart'), 'on-failure');
  t.equal(directives.get('StartLimitIntervalSec'), '0', 'restarts never stop while an address is not up yet');
  t.equal(directives.get('RestartPreventExitStatus'), '2', 'a refused config (exit 2) is not restarted in a loop');
  t.match(directives.get('ExecStart') ?? '', /lanhad\.js --config \/etc\/lanha\/lanha\.yaml$/);
  t.equal(directives.get('ExecStart'), `/usr/bin/node ${DAEMON_NODE_FLAGS.join(' ')} /usr/lib/lanha/dist/bin/lanhad.js --config /etc/lanha/lanha.yaml`,
    'the daemon runs with the same V8 memory flags as its DNS worker processes');
  t.equal(directives.get('ExecReload'), '/bin/kill -HUP $MAINPID', 'reload checks the config again (the daemon handles SIGHUP)');
  t.notOk(directives.has('MemoryDenyWriteExecute'), 'MemoryDenyWriteExecute would crash the V8 JIT');
  for (const line of unit.split('\n').filter((l) => /^(ReadOnly|ReadWrite|Inaccessible)Paths=/.test(l))) {
    for (const path of line.slice(line.indexOf('=') + 1).split(/\s+/).filter((p) => p !== '')) {
      t.match(path, /^-/, `${line}: ${path} is optional ("-"): a missing path fails the start with 226/NAMESPACE before lanha runs`);
    }
  }
});
