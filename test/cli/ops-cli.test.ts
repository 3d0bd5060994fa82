// lanctl explain, doctor and demo end to end (no root): exit codes and the accepted forms on bad
// input, the nearest MACs for an unknown one, doctor's exit 3 without a daemon and --offline on
// the examples, and `lanctl demo --once --json` on loopback (all checks pass, nothing left behind;
// a busy port is named and nothing is started).
import t from 'tap';
import { createServer } from 'node:net';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort, freeUdpPort } from '../support/ports.js';
import { repoPath } from '../support/paths.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';

// A loaded 2-core machine (several test runs at once) needs more than the default 120 s per file.
t.setTimeout(300_000);

t.test('explain and doctor against a daemon', async (t) => {
  const dhcpPort = await freeUdpPort();
  const scratch = scratchConfig(`node: { name: ex1, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${dhcpPort}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.50.10-127.0.50.20]
      domain: ex.lan
      reservations: [{ mac: "52:54:00:00:00:99", ip: 127.0.50.50, hostname: rack9 }]
  boot: [{ name: uefi, match: { arch: [7] }, bootfile: ipxe.efi }]
dns:
  port: ${await freePort()}
  zones: [{ name: ex.lan, leases: true }]
`);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const sock = ['--socket', `${scratch.dir}/s.sock`];
  await dhcpProbe({ server: '127.0.0.1', port: dhcpPort, mac: '52:54:00:00:02:01', hostname: 'web', clientId: Uint8Array.from([0xff, 1, 2, 3]) });

  const json = await runLanctl(['explain', '52:54:00:00:02:01', '--json', ...sock]);
  t.equal(json.code, 0, json.stderr);
  const body = JSON.parse(json.stdout) as { dhcp: { lease: { ip: string; index: number }; reservation: { notes: string[] } } };
  t.equal(body.dhcp.lease.ip, '127.0.50.10');
  t.ok(body.dhcp.lease.index > 0, 'the log index of the lease');
  t.match(body.dhcp.reservation.notes[0], 'not "01" + its MAC', 'the odd client-id is flagged');
  const text = await runLanctl(['explain', 'web.ex.lan', ...sock]);
  t.equal(text.code, 0);
  t.match(text.stdout, 'DNS web.ex.lan: authoritative in ex.lan');
  t.match(text.stdout, /A\s+\d+\s+127\.0\.50\.10\s+lease/);
  const sim = await runLanctl(['explain', '--simulate', '--mac', '52:54:00:00:02:02', '--arch', '7', '--json', ...sock]);
  t.equal(sim.code, 0, sim.stderr);
  t.match(JSON.parse(sim.stdout).dhcp.boot.result, 'uefi: bootfile ipxe.efi');

  for (const garbage of [['not a thing!'], ['10.0.0.300'], ['--simulate', '--mac', 'zz'], ['--simulate', '--mac', '52:54:00:00:02:02', '--arch', 'x86']]) {
    const r = await runLanctl(['explain', ...garbage, ...sock]);
    t.equal(r.code, 2, `explain ${garbage.join(' ')}: exit 2`);
  }
  const g = await runLanctl(['explain', 'not a thing!', ...sock]);
  t.match(g.stderr, 'a MAC (52:54:00:aa:bb:cc), an IPv4 address (10.0.0.5) or a DNS name');
  const unknown = await runLanctl(['explain', '52:54:00:00:02:09', ...sock]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, 'nearest known: 52:54:00:00:02:01');

  const doctor = await runLanctl(['doctor', '--json', ...sock]);
  t.equal(doctor.code, 0, doctor.stdout);
  t.same(JSON.parse(doctor.stdout).findings, []);
});

t.test('doctor without a daemon, and --offline', async (t) => {
  const down = await runLanctl(['doctor', '--socket', '/nonexistent/lanha.sock']);
  t.equal(down.code, 3);
  t.match(down.stderr, 'lanha is not running');
  const site = await runLanctl(['doctor', '--offline', '--config', repoPath('examples/site.yaml')]);
  t.equal(site.code, 0, site.stdout + site.stderr);
  // A config that config check refuses (overlapping pools) is a bad config for doctor too: exit 2, the key path named.
  const s = scratchConfig(`node: { name: d1 }
dhcp:
  subnets:
    - subnet: 10.0.0.0/24
      pools: [10.0.0.10-10.0.0.20, 10.0.0.15-10.0.0.30]
`);
  t.teardown(s.cleanup);
  const bad = await runLanctl(['doctor', '--offline', '--config', s.file]);
  t.equal(bad.code, 2, 'a config config-check refuses: exit 2');
  t.match(bad.stderr, /dhcp\.subnets\[0\]\.pools\[1\]: .*overlaps/);
  // A valid config can still be unwise: a reservation inside the dynamic pool is a warning with its fix.
  const w = scratchConfig(`node: { name: d1 }
dhcp:
  subnets:
    - subnet: 10.0.0.0/24
      pools: [10.0.0.10-10.0.0.20]
      reservations: [{ mac: "52:54:00:00:00:01", ip: 10.0.0.12 }]
`);
  t.teardown(w.cleanup);
  const warn = await runLanctl(['doctor', '--offline', '--config', w.file]);
  t.equal(warn.code, 0, 'warnings only: exit 0');
  t.match(warn.stdout, /^WARNING dhcp\.reservation-in-pool: .*10\.0\.0\.12/m);
  t.match(warn.stdout, '-> ', 'each finding says how to fix it');
});

t.test('lanctl demo --once --json passes its checks and leaves nothing behind', async (t) => {
  const before = new Set(readdirSync(tmpdir()).filter((f) => f.startsWith('lanha-demo-')));
  const httpPort = await freePort();
  const basePort = 20000 + Math.floor(Math.random() * 30000);
  const r = await runLanctl(['demo', '--once', '--json', '--loopback', '--http-port', String(httpPort), '--base-port', String(basePort)], { timeoutMs: 90_000 });
  t.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout) as { ok: boolean; steps: Array<{ step: string; ok: boolean; detail: string }> };
  t.ok(out.ok);
  t.ok(out.steps.length >= 9, `${out.steps.length} steps`);
  t.ok(out.steps.every((s) => s.ok), 'every step passed');
  t.ok(out.steps.some((s) => /^ACKed leases lost: 0; the daemon's audit: [2-9]\d* ACKs checked against the log after the restart, 0 lost$/.test(s.detail)), 'the restart lost no lease, and the daemon\'s own audit of its ACKs says so');
  const after = readdirSync(tmpdir()).filter((f) => f.startsWith('lanha-demo-') && !before.has(f));
  t.same(after, [], 'its temporary directory is gone');

  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(httpPort, '127.0.0.1', () => resolve()));
  t.teardown(() => busy.close());
  const conflict = await runLanctl(['demo', '--once', '--loopback', '--http-port', String(httpPort), '--base-port', String(basePort)], { timeoutMs: 30_000 });
  t.equal(conflict.code, 2, 'a busy port is a missing prerequisite');
  t.match(conflict.stderr, `tcp 127.0.0.1:${httpPort}`);
  t.match(conflict.stderr, 'nothing was started');
  t.same(readdirSync(tmpdir()).filter((f) => f.startsWith('lanha-demo-') && !before.has(f)), [], 'nothing made');
});
