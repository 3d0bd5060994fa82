// Members report themselves to each other over the cluster transport: three daemons in this
// process on loopback (lan-b runs a different config), and lan-a's status JSON, `lanctl status`,
// the `/` page cards and doctor show lan-b's and the witness's own term, indexes, version, config
// hash, last report and clock offset; doctor names lan-b's different config, the boot file that
// differs between the two LAN nodes' TFTP roots, and every member's WAL fsync p99.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { startDaemon, configHash, type Daemon } from '../../bin/daemon.js';
import { formatMembers } from '../../bin/commands-core.js';
import { formatRaftStatus, type RaftStatusBody } from '../../cluster/raft/status-text.js';
import type { MemberRow } from '../../cluster/member-status.js';
import type { Finding } from '../../services/ops/doctor.js';
import { freePort, freePorts } from '../support/ports.js';
import { httpGetText } from '../support/http-get.js';

t.setTimeout(180_000);

const get = httpGetText;

const read = async (d: Daemon, path: string): Promise<Record<string, unknown>> => (await d.control.read(path, new URLSearchParams())).body as Record<string, unknown>;

t.test('three members: each one\'s own report reaches the others', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-members-'));
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const names = ['lan-a', 'lan-b', 'witness'];
  const [p1, p2, p3, httpPort] = await freePorts(4) as [number, number, number, number];
  const ports = [p1, p2, p3];
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons.reverse()) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [i, name] of names.entries()) {
    if (name !== 'witness') {
      mkdirSync(join(dir, `tftp-${name}`));
      writeFileSync(join(dir, `tftp-${name}`, 'Image'), `kernel built on ${name}`);
      writeFileSync(join(dir, `tftp-${name}`, 'rpi4.dtb'), 'the same device tree');
    }
    const config = parseConfig(`node: { name: ${name}, role: ${name === 'witness' ? 'witness' : 'server'}, stateDir: "${dir}/${name}", controlSocket: "${dir}/${name}.sock" }
cluster:
  id: members-test
  keyFile: "${keyFile}"
  snapshotEntries: ${name === 'lan-b' ? 5000 : 10000}
  members:
${names.map((n, j) => `    - { name: ${n}, address: 127.0.0.1, port: ${ports[j]}${n === 'witness' ? ', role: witness' : ''} }`).join('\n')}
${name === 'lan-a' ? `http: { listen: "127.0.0.1:${httpPort}" }` : ''}
${name === 'witness' ? '' : `tftp: { port: ${await freePort()}, listen: [127.0.0.1], root: "${dir}/tftp-${name}" }`}
`);
    daemons.push(await startDaemon(config, { log: silentLogger }));
  }
  const [a, b] = daemons as [Daemon, Daemon, Daemon];
  let rows: MemberRow[] = [];
  for (let i = 0; i < 300; i++) {
    rows = (await read(a, '/v1/status'))['members'] as MemberRow[];
    if (rows.every((r) => r.reported) && rows.every((r) => r.term === rows[0]!.term && r.term! > 0) && rows.some((r) => r.role === 'leader') && rows.every((r) => r.local || r.sameState === true)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same(rows.map((r) => r.name), names);
  t.ok(rows.every((r) => r.reported), 'every member reported');
  const bRow = rows.find((r) => r.name === 'lan-b')!;
  const bStatus = b.state.status();
  t.equal(bRow.term, bStatus.term, "lan-b's term, as lan-b says it");
  t.equal(bRow.configHash, configHash(b.config), "lan-b's config hash");
  t.not(bRow.configHash, configHash(a.config), 'which differs from lan-a\'s');
  t.equal(bRow.version, (await read(b, '/v1/status'))['version']);
  t.ok(typeof bRow.appliedIndex === 'number' && bRow.appliedIndex > 0, `applied index ${bRow.appliedIndex}`);
  // The bounds tell a figure from a unit or clock mix-up (seconds, monotonic against wall: hours
  // off); a loaded machine's late report is not what they check.
  t.ok(bRow.lagEntries !== null && bRow.lastContactMs !== null && bRow.lastContactMs < 60_000, `lag and last contact known (${bRow.lastContactMs} ms)`);
  t.ok(bRow.clockOffsetMs !== null && Math.abs(bRow.clockOffsetMs) < 10_000, `one clock: offset ${bRow.clockOffsetMs} ms`);
  t.equal(rows.find((r) => r.name === 'witness')!.role, 'witness', 'the witness says what it is');
  t.ok(rows.every((r) => r.local || r.sameState === true), 'every member holds the same state hash at the same applied index');

  const text = formatMembers(rows);
  t.match(text, new RegExp(`lan-b\\s+\\S+\\s+${bRow.term}\\s`), 'lanctl status prints lan-b\'s term');
  t.notMatch(text, /no report from that member/, 'nobody unknown');
  const raftText = formatRaftStatus((await read(a, '/v1/status'))['cluster'] as RaftStatusBody);
  t.match(raftText, /^peer links: \d+ closed as dead \(\d+ outbound, \d+ inbound\), \d+ dial timeouts, pings \d+ sent \/ \d+ received \(ping after \d+ ms idle, dead after \d+ ms silent\)$/m, 'lanctl status prints the links\' liveness counters');
  t.match(raftText, /^  lan-b: outbound up, inbound up, \d+ connects/m, 'and a line per peer');
  t.match(raftText, /^  witness: outbound up/m);

  const page = await get(httpPort, '/');
  const cell = (key: string): string | undefined => new RegExp(`data-testid="member-lan-b-${key}">([^<]*)<`).exec(page)?.[1];
  t.equal(cell('term'), String(bRow.term), 'the card shows lan-b\'s term');
  t.equal(cell('version'), bRow.version);
  t.equal(cell('config'), bRow.configHash!.slice(0, 12));
  t.notMatch(page, /data-testid="member-lan-b-missing"/, 'nothing missing on lan-b\'s card');
  t.match(page, /data-testid="member-lan-b-state">(same as this node|not compared now)/, 'the card says whether the states agree');
  const metrics = await get(httpPort, '/metrics');
  const contact = Number(/^lanha_raft_peer_last_contact_seconds\{peer="lan-b"\} (\S+)$/m.exec(metrics)?.[1]);
  t.ok(contact >= 0 && contact < 5, `lanha_raft_peer_last_contact_seconds for lan-b: ${contact}`);
  t.match(metrics, /^lanha_peer_clock_offset_seconds\{peer="witness"\} /m);

  let doctor: Record<string, unknown> = {};
  for (let i = 0; i < 100; i++) {
    doctor = await read(a, '/v1/doctor');
    if ((doctor['findings'] as Finding[]).some((f) => f.id === 'boot.files-differ' && f.severity === 'error')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const findings = doctor['findings'] as Finding[];
  const boot = findings.filter((f) => f.id.startsWith('boot.'));
  t.same(boot.map((f) => f.id), ['boot.files-differ'], 'the kernel differs, the device tree does not');
  t.match(boot[0]?.evidence, '1 boot file(s) differ (sha256) between lan-a and lan-b: Image');
  const wal = (doctor['measured'] as { walFsyncP99Ms: Record<string, number | null> }).walFsyncP99Ms;
  t.same(Object.keys(wal).sort(), names, 'a WAL fsync p99 for every member');
  t.ok(Object.values(wal).every((ms) => typeof ms === 'number' && ms >= 0), `p99s ${JSON.stringify(wal)}`);
  const differs = findings.filter((f) => f.id === 'cluster.config-differs');
  // The witness's file has no tftp: block, but a witness runs no services: only LAN nodes are compared.
  t.same(differs.map((f) => f.evidence.split(' ')[0]), ['lan-b'], 'doctor names the LAN node whose config differs');
  t.match(differs[0]?.evidence, /^lan-b runs config [0-9a-f]{12}, lan-a runs [0-9a-f]{12}/);
  t.notOk(findings.some((f) => f.id === 'cluster.version-differs' || f.id === 'cluster.clock-offset'), 'same version, same clock');
});

t.test('the config hash is equal on members that run the same file: node:, http: and interface names may differ', async (t) => {
  const file = (name: string, iface: string, pool: string, http: string): string => `node: { name: ${name}, address: 10.9.0.${name === 'a' ? 2 : 3} }
http: { listen: "10.9.0.${http}:7480" }
vip: { address: 10.9.0.1/24, interface: ${iface} }
dhcp:
  interface: ${iface}
  subnets: [{ subnet: 10.9.0.0/24, pools: [${pool}] }]
`;
  const a = configHash(parseConfig(file('a', 'eth0', '10.9.0.100-10.9.0.199', '2')));
  t.equal(configHash(parseConfig(file('b', 'end0', '10.9.0.100-10.9.0.199', '3'))), a, 'another node, board and listener: same hash');
  t.not(configHash(parseConfig(file('b', 'end0', '10.9.0.100-10.9.0.150', '3'))), a, 'another pool: another hash');
});
