// `lanctl nodes add/set/remove/import/pending/accept/show` end to end against a real `lanctl serve` on
// loopback (no root): writes go through the control API to the replicated inventory, clashes are
// refused with the clashing node named (exit 1), usage errors exit 2, a stopped daemon exits 3; the
// config's `nodes:` block seeds the inventory, and a removed seeded node stays removed after a restart.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort } from '../support/ports.js';

// About 40 lanctl runs: a loaded CI machine needs more than tap's default two minutes.
t.setTimeout(600_000);

const config = (dhcpPort: number): string => `node: { name: t, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${dhcpPort}
  listen: 127.0.0.1
  subnets:
    - subnet: 10.0.0.0/24
      pools: [10.0.0.100-10.0.0.199]
      domain: rack.lan
      reservations: [{ mac: "52:54:00:00:00:99", ip: 10.0.0.99, hostname: printer }]
nodes:
  - { name: seed1, mac: "52:54:00:00:01:01", ip: 10.0.0.11, profile: pi4, group: row1 }
`;

t.test('lanctl nodes: add, clashes named, set, show, remove, import, exit codes', async (t) => {
  const scratch = scratchConfig(config(await freePort()));
  t.teardown(scratch.cleanup);
  const sock = ['--socket', join(scratch.dir, 's.sock')];
  // A lanctl run can take over 20 s on a machine at load 50: give each a minute and a half.
  const lanctl = (...args: string[]) => runLanctl([...args, ...sock], { timeoutMs: 90_000 });

  const down = await lanctl('nodes', 'add', 'x', '--mac', '52:54:00:00:00:01');
  t.equal(down.code, 3, 'daemon not running: exit 3');

  let daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  try {
    // The config node is seeded by the leader (a one-member cluster leads at once).
    let seeded = '';
    for (let i = 0; i < 50 && !seeded.includes('seed1'); i++) {
      seeded = (await lanctl('nodes')).stdout;
      if (!seeded.includes('seed1')) await new Promise((r) => setTimeout(r, 200));
    }
    t.match(seeded, /seed1\s+52:54:00:00:01:01\s+10\.0\.0\.11 \(r\)\s+pi4 \(unknown!\)\s+row1/, 'seeded from nodes:, its unknown profile flagged');
    t.match(seeded, '(unknown!) = no `profiles:` entry has that name: its boot files cannot be rendered', 'the legend says what an unknown profile costs (it said the node "boots with the default rules")');

    const add = await lanctl('nodes', 'add', 'Rack1', '--mac', '52-54-00-00-00-01', '--ip', '10.0.0.21', '--profile', 'pi4', '--group', 'row1');
    t.equal(add.code, 0, add.stderr);
    t.match(add.stdout, 'added rack1  52:54:00:00:00:01  10.0.0.21  profile pi4  group row1');

    // --json on the writes: the node as `nodes show --json` has it under "node", for scripts.
    const addJson = await lanctl('nodes', 'add', 'json1', '--mac', '52:54:00:00:00:31', '--json');
    t.equal(addJson.code, 0, addJson.stderr);
    t.match(JSON.parse(addJson.stdout), { name: 'json1', mac: '52:54:00:00:00:31', ip: null, profile: null });
    const setJson = await lanctl('nodes', 'set', 'json1', '--profile', 'pi4', '--json');
    t.match(JSON.parse(setJson.stdout), { name: 'json1', profile: 'pi4' });
    const dryJson = await lanctl('nodes', 'add', 'json2', '--mac', '52:54:00:00:00:32', '--dry-run', '--json');
    t.match(JSON.parse(dryJson.stdout), { dryRun: true, command: { type: 'node.add', name: 'json2', mac: '52:54:00:00:00:32' } });
    const removeJson = await lanctl('nodes', 'remove', 'json1', '--json');
    t.equal(removeJson.code, 0, removeJson.stderr);
    t.match(JSON.parse(removeJson.stdout), { name: 'json1', mac: '52:54:00:00:00:31' });
    const clashJson = await lanctl('nodes', 'add', 'json3', '--mac', '52:54:00:00:00:01', '--json');
    t.equal(clashJson.code, 1, 'a clash with --json still exits 1');
    t.equal(clashJson.stdout, '', 'and prints no JSON');

    const clashes: Array<[string[], RegExp]> = [
      [['rack2', '--mac', '52:54:00:00:00:01'], /MAC 52:54:00:00:00:01 already belongs to node rack1/],
      [['rack2', '--mac', '52:54:00:00:00:02', '--ip', '10.0.0.21'], /IP 10\.0\.0\.21 already belongs to node rack1/],
      [['rack1', '--mac', '52:54:00:00:00:02'], /name rack1 is already taken by node rack1/],
      [['rack2', '--mac', '52:54:00:00:00:02', '--ip', '10.9.0.1'], /IP 10\.9\.0\.1 is in none of the DHCP subnets \(10\.0\.0\.0\/24\)/],
      [['rack2', '--mac', '52:54:00:00:00:99'], /already has a reservation \(10\.0\.0\.99\) in dhcp\.subnets\[0\]\.reservations\[0\]/],
    ];
    for (const [args, message] of clashes) {
      const r = await lanctl('nodes', 'add', ...args);
      t.equal(r.code, 1, `exit 1 for ${args.join(' ')}`);
      t.match(r.stderr, message);
    }
    // A value not of its form is the command line's fault, refused before the daemon is asked (README: 2 usage).
    for (const [args, message] of [
      [['add', 'rack2', '--mac', '52:54:00:00:00:zz'], /MAC "52:54:00:00:00:zz" is not a MAC address/],
      [['add', 'rack2', '--mac', '52:54:00:00:00:02', '--ip', '10.0.0.300'], /IP "10\.0\.0\.300" is not an IPv4 address/],
      [['add', 'rack_2', '--mac', '52:54:00:00:00:02'], /rack_2/],
      [['set', 'rack1', '--group', 'a b'], /group "a b" is not a group name/],
      [['accept', 'zz', 'rack7'], /MAC "zz" is not a MAC address/],
    ] as Array<[string[], RegExp]>) {
      const r = await lanctl('nodes', ...args);
      t.equal(r.code, 2, `exit 2 (usage) for nodes ${args.join(' ')} (it was 1, as for a clash)`);
      t.match(r.stderr, message);
    }
    const usage = await lanctl('nodes', 'add', 'rack2');
    t.equal(usage.code, 2, 'no --mac: usage, exit 2');
    const dry = await lanctl('nodes', 'add', 'rack2', '--mac', '52:54:00:00:00:02', '--dry-run');
    t.equal(dry.code, 0);
    t.match(dry.stdout, 'dry run');

    const set = await lanctl('nodes', 'set', 'rack1', '--ip', '10.0.0.22', '--profile', 'none');
    t.equal(set.code, 0, set.stderr);
    t.match(set.stdout, 'changed rack1  52:54:00:00:00:01  10.0.0.22  group row1');
    t.equal((await lanctl('nodes', 'set', 'nope', '--ip', '10.0.0.30')).code, 1, 'set of an unknown node: exit 1');

    const show = await lanctl('nodes', 'show', 'rack1', '--json');
    t.equal(show.code, 0, show.stderr);
    t.match(JSON.parse(show.stdout), { node: { name: 'rack1', mac: '52:54:00:00:00:01', ip: '10.0.0.22', profile: null, group: 'row1' } });
    const timeline = await lanctl('nodes', 'show', 'rack1', '--timeline');
    t.match(timeline.stdout, /name\s+rack1/);
    t.match(timeline.stdout, 'no boot events yet');
    t.equal((await lanctl('nodes', 'show', 'nope')).code, 1);

    const pending = await lanctl('nodes', 'pending');
    t.equal(pending.code, 0);
    t.match(pending.stdout, 'no pending MACs');
    const accept = await lanctl('nodes', 'accept', '52:54:00:00:00:42', 'new1');
    t.equal(accept.code, 1);
    t.match(accept.stderr, /is not pending/);

    // Import: a dnsmasq file and a hosts file; the bad line is reported, the rest imported.
    const conf = join(scratch.dir, 'cluster.conf');
    const hosts = join(scratch.dir, 'hosts');
    writeFileSync(conf, 'dhcp-host=52:54:00:00:02:01,10.0.0.41\ndhcp-host=52:54:00:00:02:02,imp2,10.0.0.42\ndhcp-host=52:54:00:00:02:03,imp3,10.0.0.22\ndhcp-host=id:01:aa,10.0.0.44\n');
    writeFileSync(hosts, '127.0.0.1 localhost\n10.0.0.41 imp1 imp1.rack.lan\n');
    const dryImport = await lanctl('nodes', 'import', conf, hosts, '--dry-run');
    t.equal(dryImport.code, 1, 'a refused line makes the import exit 1');
    t.match(dryImport.stdout, /cluster\.conf:3: refused: node imp3 .*IP 10\.0\.0\.22 already belongs to node rack1/);
    t.match(dryImport.stdout, /nothing changed/);
    const strict = await lanctl('nodes', 'import', conf, hosts, '--strict');
    t.equal(strict.code, 1);
    t.match(strict.stdout, /--strict: nothing imported/);
    t.notMatch((await lanctl('nodes')).stdout, 'imp1', 'strict imported nothing');
    const imported = await lanctl('nodes', 'import', conf, hosts);
    t.equal(imported.code, 1, 'still exit 1: one line was refused');
    t.match(imported.stdout, /cluster\.conf:1: imported: node imp1 52:54:00:00:02:01 10\.0\.0\.41/);
    t.match(imported.stdout, /cluster\.conf:2: imported: node imp2/);
    t.match(imported.stdout, /cluster\.conf:4: skipped: client-id entry/);
    t.match(imported.stdout, /hosts:1: skipped: loopback/);
    t.match(imported.stdout, /2 imported, 0 unchanged, 3 skipped, 1 failed/);
    const again = await lanctl('nodes', 'import', conf);
    t.match(again.stdout, /cluster\.conf:2: unchanged/, 'importing again changes nothing');

    const list = await lanctl('nodes', '--json');
    const rows = JSON.parse(list.stdout) as Array<{ name: string | null; ip: string | null }>;
    t.same(rows.filter((r) => r.name !== null).map((r) => r.name).sort(), ['imp1', 'imp2', 'rack1', 'seed1']);

    const remove = await lanctl('nodes', 'remove', 'seed1');
    t.equal(remove.code, 0, remove.stderr);
    t.match(remove.stdout, 'removed seed1');
    t.equal((await lanctl('nodes', 'remove', 'seed1')).code, 1, 'removing it twice: exit 1');
    t.equal((await lanctl('nodes', 'frob')).code, 2, 'an unexpected argument: exit 2');
  } finally {
    await daemon.stop();
  }

  // Restart: the log keeps the inventory; the removed config node is not seeded again.
  daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  try {
    await new Promise((r) => setTimeout(r, 1500)); // the seeder runs at once when leading; give it a moment
    const rows = JSON.parse((await lanctl('nodes', '--json')).stdout) as Array<{ name: string | null }>;
    t.same(rows.filter((r) => r.name !== null).map((r) => r.name).sort(), ['imp1', 'imp2', 'rack1'], 'the log is the truth: seed1 stays removed');
  } finally {
    await daemon.stop();
  }
});
