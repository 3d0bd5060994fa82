// Writes the state files of a member with the build in DIST (argv[2], a `dist` directory) into
// OUT (argv[3]): a Raft directory (WAL segments, hardstate, snapshot, owner), raft.member, the ACK
// journal and a rootfs manifest, then reopens them with the same build and records what it read
// (state hash, applied index, a few values) in OUT/expected.json. Run once per release with that
// release's build; cluster/upgrade-golden.test.ts reads them with the current code. The release's
// example configs (DIST/../examples) go to OUT/config with the config hash that release computes.
//   node test/golden/state/make.mjs /path/to/old/dist test/golden/state/<release>
import { mkdirSync, rmSync, writeFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, outArg] = process.argv.slice(2);
if (!dist || !outArg) { console.error('usage: node make.mjs DIST OUT'); process.exit(2); }
const load = (p) => import(pathToFileURL(resolve(dist, p)).href);
const { RaftStateLog, memberFile, raftDir } = await load('cluster/raft-state-log.js');
const { AckJournal } = await load('cluster/ack-journal.js');
const { encodeManifest, manifestId } = await load('cluster/deploy/manifest.js');
const { silentLogger } = await load('lib/log.js');
const { seededRandom } = await load('lib/random.js');
const { parseConfig } = await load('config/index.js');
const { configHash } = await load('bin/daemon.js');

const out = resolve(outArg);
rmSync(out, { recursive: true, force: true });
const stateDir = join(out, 'state');
mkdirSync(stateDir, { recursive: true });

// Log time: fixed steps from a fixed start, so the stamps do not depend on when this ran.
const BASE = Date.parse('2026-12-04T10:00:00Z');
let tick = 0;
const clock = { monotonicMs: () => performance.now(), wallMs: () => BASE + 1000 * tick };

const open = () => RaftStateLog.open({
  id: 'lan-a', dir: raftDir(stateDir), conf: { voters: ['lan-a'], learners: [], witnesses: [] },
  clock, random: seededRandom(7), log: silentLogger, snapshotEntries: 24, segmentBytes: 8192, memberFile: memberFile(stateDir),
});

const mac = (i) => `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;
const ip = (i) => (10 << 24) + (20 << 16) + 100 + i;
const manifest = { xattrs: false, entries: [
  { path: '.', type: 'd', mode: 0o755, uid: 0, gid: 0 },
  { path: 'etc', type: 'd', mode: 0o755, uid: 0, gid: 0 },
  { path: 'etc/hostname', type: 'f', mode: 0o644, uid: 0, gid: 0, size: 5, sha256: 'e3b9a1b9c0b0c95bbd7b2b1e5b4a6d0f4f0b1f3e0d6c9a7b8e5f4d3c2b1a0908' },
  { path: 'sbin/init', type: 'l', mode: 0o777, uid: 0, gid: 0, target: '../lib/systemd/systemd' },
] };
const gen = manifestId(manifest);
const hostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenGoldenGoldenGoldenGoldenGoldenGolden';
const commands = [
  ...Array.from({ length: 12 }, (_, i) => ({ type: 'lease.grant', ip: ip(i), mac: mac(i), clientId: `01${mac(i).replaceAll(':', '')}`, hostname: `c${i}`, subnet: '10.20.0.0/24', leaseMs: 3_600_000 })),
  { type: 'lease.release', ip: ip(1), mac: mac(1) },
  { type: 'lease.decline', ip: ip(40), mac: mac(40), quarantineMs: 600_000 },
  { type: 'dns.set', name: 'www.lab.test', rrtype: 'A', ttl: 300, data: '10.20.0.50' },
  { type: 'dns.set', name: 'old.lab.test', rrtype: 'A', ttl: 300, data: '10.20.0.51' },
  { type: 'dns.delete', name: 'old.lab.test' },
  { type: 'node.add', name: 'n01', mac: '02:00:00:00:02:01', ip: ip(60), profile: 'pi4', group: 'rack1', origin: 'config' },
  { type: 'node.add', name: 'n02', mac: '02:00:00:00:02:02', profile: 'pi4' },
  { type: 'node.set', name: 'n02', group: 'rack2', ip: ip(61) },
  { type: 'node.seen', mac: '02:00:00:00:02:09', arch: 11, vendorClass: 'PXEClient:Arch:00011' },
  { type: 'node.accept', mac: '02:00:00:00:02:09', name: 'n09' },
  { type: 'node.trust', name: 'n01', hostKey },
  { type: 'node.boot', mac: '02:00:00:00:02:01', event: 'dhcp.firmware', detail: 'u-boot' },
  { type: 'node.boot', mac: '02:00:00:00:02:01', event: 'tftp', detail: 'boot.scr.uimg' },
  { type: 'rootfs.commit', generation: gen, member: 'lan-a', source: '/srv/rootfs', files: 1, dirs: 2, symlinks: 1, hardlinks: 0, bytes: 5 },
  { type: 'rootfs.verified', generation: gen, member: 'lan-a', ok: true },
  { type: 'rootfs.assign', nodes: ['n01', 'n02'], generation: gen },
  { type: 'node.generation', name: 'n01', running: gen },
  { type: 'deploy.trust', node: 'n02', hostKey },
  { type: 'deploy.job.start', job: 'j1', kind: 'rootfs', member: 'lan-a', nodes: ['n01', 'n02'], generation: gen },
  { type: 'deploy.job.node', job: 'j1', node: 'n01', state: 'done', bytes: 5, total: 5, sent: 5, exit: 0 },
  { type: 'deploy.job.node', job: 'j1', node: 'n02', state: 'failed', exit: 12, error: 'rsync: not found' },
  { type: 'deploy.job.end', job: 'j1', state: 'failed' },
  { type: 'deploy.synced', node: 'n01', generation: gen, ok: true, exit: 0, bytes: 5 },
  { type: 'config.generation', generation: 3, hash: 'a'.repeat(64) },
  { type: 'vip.takeover', node: 'lan-a', term: 2, trigger: 'election', parts: [['vote', 12], ['vip', 3]], totalMs: 15 },
  { type: 'noop' },
  ...Array.from({ length: 6 }, (_, i) => ({ type: 'lease.grant', ip: ip(i), mac: mac(i), subnet: '10.20.0.0/24', leaseMs: 7_200_000 })),
  { type: 'lease.expire', ip: ip(40) },
];

const first = await open();
const acked = [];
for (const command of commands) {
  tick++;
  const entry = await first.propose(command);
  if (command.type === 'lease.grant') acked.push({ index: entry.index, term: entry.term ?? null, ip: command.ip, mac: command.mac, at: entry.at, sentAt: BASE + 1000 * tick + 1 });
}
await first.close();

const journal = AckJournal.open(join(stateDir, 'acks.jsonl'), 64);
for (const a of acked) journal.append(a, acked);
journal.close?.();

mkdirSync(join(stateDir, 'rootfs'), { recursive: true });
writeFileSync(join(stateDir, 'rootfs', `${gen}.manifest`), encodeManifest(manifest));

// Read back with the same build: what the current code must read too.
const again = await open();
const s = again.fsm.snapshot();
const expected = {
  writtenBy: process.argv[4] ?? 'unknown',
  stateHash: again.fsm.hash(),
  appliedIndex: again.fsm.appliedIndex,
  term: again.status().term,
  leases: s.leases.length,
  boundLeases: s.leases.filter((l) => l.state === 'bound').length,
  records: s.records.length,
  inventoryNodes: s.inventory?.nodes?.length ?? null,
  rootfs: s.rootfs !== undefined,
  snapshotIndex: again.host.node.snapshotIndex,
  acks: acked.length,
  generation: gen,
};
await again.close();
// The release's example configs, as an operator's file of that release, and the hash its members
// report for them (doctor compares it across members).
mkdirSync(join(out, 'config'), { recursive: true });
expected.configHashes = {};
const examples = resolve(dist, '..', 'examples');
for (const f of readdirSync(examples).filter((n) => n.endsWith('.yaml')).sort()) {
  const text = readFileSync(join(examples, f), 'utf8');
  writeFileSync(join(out, 'config', f), text);
  expected.configHashes[f] = configHash(parseConfig(text, f));
}
writeFileSync(join(out, 'expected.json'), JSON.stringify(expected, null, 2) + '\n');
const files = [];
const walk = (d) => { for (const f of readdirSync(d)) { const p = join(d, f); if (statSync(p).isDirectory()) walk(p); else files.push(`${p.slice(out.length + 1)} ${statSync(p).size}`); } };
walk(out);
console.log(JSON.stringify(expected, null, 2));
console.log(files.join('\n'));
