// A command whose service does not run on the daemon asked (no deploy:, boot:, dhcp:, dns: or vip:
// block in its config, or a witness) is told so, with what to do, instead of "no such API route: GET /v1/deploy/jobs".
import t from 'tap';
import { join } from 'node:path';
import { runLanctl, scratchConfig, serveDaemon, SOLO_CONFIG } from '../support/daemon.js';
import { serviceDefinitions } from '../../services/registry.js';
import { serviceOffWords } from '../../bin/daemon.js';
import type { LanhaConfig } from '../../config/index.js';

t.setTimeout(300_000);

t.test('deploy, rootfs, nodes trust and boot render against a daemon without those services', async (t) => {
  const scratch = scratchConfig(SOLO_CONFIG);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const lanctl = (...args: string[]) => runLanctl([...args, '--socket', join(scratch.dir, 'lanha.sock')], { timeoutMs: 90_000 });
  const cases: Array<[string[], string]> = [
    [['deploy', 'jobs'], 'deploy'],
    [['deploy', 'rootfs', '--to', 'c1'], 'deploy'],
    [['rootfs', 'list'], 'deploy'],
    [['nodes', 'trust', 'c1', '--yes'], 'deploy'],
    [['boot', 'render', 'c1'], 'boot'],
    [['leases'], 'dhcp'],
    [['leases', 'release', '10.0.0.9'], 'dhcp'],
    [['records'], 'dns'],
    [['failover'], 'vip'],
  ];
  for (const [args, service] of cases) {
    const r = await lanctl(...args);
    t.equal(r.code, 1, `lanctl ${args.join(' ')}: exit 1`);
    t.match(r.stderr, new RegExp(`the ${service} service does not run on solo: its config has no ${service}: block \\(add one and restart the daemon, or ask a member that runs it\\)`), `lanctl ${args.join(' ')}: says which service and why`);
    t.notMatch(r.stderr, /no such API route/);
  }
  const status = await lanctl('status');
  t.equal(status.code, 0, 'routes of running parts are untouched');
});

t.test('a witness is told apart from a missing block', async (t) => {
  const deploy = serviceDefinitions.find((d) => d.name === 'deploy')!;
  const tftp = serviceDefinitions.find((d) => d.name === 'tftp')!;
  const members = [{ name: 'lan-a', role: 'server' }, { name: 'lan-b', role: 'server' }, { name: 'w', role: 'witness' }];
  const witness = { node: { name: 'w', role: 'witness' }, cluster: { members }, deploy: { targets: [] } } as unknown as LanhaConfig;
  t.equal(serviceOffWords(deploy, witness), 'the deploy service does not run on w: a witness runs no services; ask a LAN-service member (lan-a, lan-b)');
  t.equal(serviceOffWords(tftp, witness), 'the tftp service does not run on w: a witness runs no services; ask a LAN-service member (lan-a, lan-b)',
    'not "add a tftp: block": a witness config refuses one');
  t.same(serviceDefinitions.filter((d) => d.apiPaths === undefined).map((d) => d.name), [], 'every service names its API paths');
});
