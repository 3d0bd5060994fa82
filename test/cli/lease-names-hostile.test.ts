// Hostile DHCP host names end to end (no root): a real `lanctl serve` on loopback high ports, one
// DORA per name with the built-in probe (option 12 as raw bytes), then a zone transfer of the lease
// zone with dig. What a client names itself reaches DNS only as one sanitized label of its own:
// never a zone of ours (mgmt.names.lan is a zone of its own), a static record, an inventory node's
// or a lanha node's name, wpad, nor anything that is not a plain DNS label.
import t from 'tap';
import { scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePorts } from '../support/ports.js';
import { haveTools, runTool } from '../support/tools.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';

t.setTimeout(300_000);

/** What each name sent becomes in DNS: its label under names.lan, or null when none is published. */
const NAMES: Array<[string | Uint8Array, string | null]> = [
  ['mgmt', null], // the apex of zone mgmt.names.lan
  ['MGMT', null],
  ['ns', null], // a static record
  ['N1', null], // an inventory node's name, in another case
  ['solo', null], // this lanha node's name
  ['wpad', null],
  ['*', null],
  ['a.b.c', 'a'],
  [Uint8Array.from([0, ...Buffer.from('evil')]), 'evil'],
  ['x'.repeat(70), 'x'.repeat(63)],
  ['-lead', 'lead'],
  ['$(reboot)', 'reboot'],
  ['a;b', 'a-b'],
  ['tab\there', 'tab-here'],
  ['\u212Aube', 'kube'], // KELVIN SIGN lower-cases to k
  ['esc\x1b[2J', 'esc--2j'],
];

t.test('hostile option 12 names in a zone transfer of the lease zone', async (t) => {
  if (!haveTools(t, ['dig'], 'hostile lease names test')) return;
  const [dns] = await freePorts(1);
  const dhcp = 20000 + Math.floor(Math.random() * 20000);
  const sc = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${dhcp}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.41.10-127.0.41.250]
      domain: names.lan
      leaseTime: 1h
dns:
  port: ${dns}
  zones:
    - { name: names.lan, leases: true, records: ["ns A 127.0.0.1"] }
    - { name: mgmt.names.lan, records: ["bmc1 A 127.0.0.90"] }
  transfer: { allow: [127.0.0.0/8] }
nodes:
  - { name: n1, mac: "52:54:00:00:09:01", ip: 127.0.41.5 }
`);
  t.teardown(sc.cleanup);
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(() => d.stop());
  const acked = new Map<string, string | null>();
  for (const [i, [name, want]] of NAMES.entries()) {
    const r = await dhcpProbe({ server: '127.0.0.1', port: dhcp, mac: `52:54:00:00:0a:${i.toString(16).padStart(2, '0')}`, hostname: name, timeoutMs: 8000 });
    acked.set(r.acked, want);
  }
  t.equal(acked.size, NAMES.length, 'every client got an address of its own');
  // The zones follow the leases within a rebuild (at most 2 s); the last grant's name shows when it is there.
  let axfr = '';
  for (let i = 0; i < 50; i++) {
    axfr = (await runTool('dig', ['+tcp', '+time=3', '+tries=1', '-p', String(dns), '@127.0.0.1', 'names.lan', 'AXFR'])).out;
    if (axfr.includes('esc--2j.names.lan.')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const records = axfr.split('\n').filter((l) => l !== '' && !l.startsWith(';')).map((l) => l.split(/\s+/));
  const a = records.filter((r) => r[3] === 'A').map((r) => [r[0]!.toLowerCase(), r[4]!] as const);
  t.ok(a.length > 0, `the transfer came (${records.length} records)`);
  for (const [owner] of a) t.match(owner, /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)?names\.lan\.$/, `${owner}: one plain label under the zone`);
  const byIp = new Map(a.map(([owner, ip]) => [ip, owner]));
  for (const [ip, want] of acked) t.equal(byIp.get(ip) ?? null, want === null ? null : `${want}.names.lan.`, `${ip}: ${want ?? 'no name'}`);
  t.same(a.filter(([owner]) => owner === 'mgmt.names.lan.'), [], 'zone names.lan holds nothing at the apex of zone mgmt.names.lan');
  t.same(a.filter(([owner]) => owner === 'n1.names.lan.').map(([, ip]) => ip), ['127.0.41.5'], 'n1 is the inventory node\'s alone');
  t.same(a.filter(([owner]) => owner === 'ns.names.lan.').map(([, ip]) => ip), ['127.0.0.1'], 'ns is the static record\'s alone');
});
