// The ACK audit after a real leadership change: two LAN daemons and a witness in this process on
// loopback, DHCP clients (the built-in relay-style probe) leasing from the leader, then a planned
// leadership transfer (what `lanctl failover` does once the VIP is dropped; the VIP itself needs
// root and is covered by the lab). The old leader checks every ACK it sent against the log the new
// leader committed, and its status JSON, `lanctl status`, the `/` page and /metrics all say 0 lost
// with the ACKs checked. A one-node daemon killed with kill -9 audits, once restarted, the ACKs its
// journal kept.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { startDaemon, type Daemon } from '../../bin/daemon.js';
import type { RaftStateLog } from '../../cluster/raft-state-log.js';
import type { AckAuditSummary } from '../../cluster/ack-audit.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';
import { freePorts, freeUdpPorts } from '../support/ports.js';
import { httpGetText } from '../support/http-get.js';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { opsDaemonConfig } from '../support/ops-daemon.js';
import { until } from '../support/state-log.js';

t.setTimeout(180_000);

const get = httpGetText;

const audit = async (d: Daemon): Promise<AckAuditSummary> => ((await d.control.read('/v1/status', new URLSearchParams())).body as { ackAudit: AckAuditSummary }).ackAudit;

t.test('a planned leadership change: the old leader audits its ACKs and finds none lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-audit-'));
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const names = ['lan-a', 'lan-b', 'witness'] as const;
  const [r1, r2, r3, h1, h2] = await freePorts(5);
  const raftPorts = [r1!, r2!, r3!];
  // DHCP binds 127.0.0.1 on UDP (freePorts probes TCP); the probe relays from 127.0.0.2.
  const [d1, d2] = await freeUdpPorts(2);
  const dhcpPorts = { 'lan-a': d1!, 'lan-b': d2! };
  const httpPorts = { 'lan-a': h1!, 'lan-b': h2! };
  const daemons = new Map<string, Daemon>();
  t.teardown(async () => {
    for (const d of [...daemons.values()].reverse()) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [i, name] of names.entries()) {
    const lan = name !== 'witness';
    const config = parseConfig(`node: { name: ${name}, role: ${lan ? 'server' : 'witness'}, address: 127.0.0.1, stateDir: "${dir}/${name}", controlSocket: "${dir}/${name}.sock" }
cluster:
  id: ack-audit-test
  keyFile: "${keyFile}"
  # A loaded 2-core machine must not move leadership on its own between the leases and the transfer.
  electionTimeout: 1500ms
  members:
${names.map((n, j) => `    - { name: ${n}, address: 127.0.0.1, port: ${raftPorts[j]}${n === 'witness' ? ', role: witness' : ''} }`).join('\n')}
${lan ? `http: { listen: "127.0.0.1:${httpPorts[name]}" }
dhcp:
  port: ${dhcpPorts[name]}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.60.10-127.0.60.40]
      leaseTime: 1h
` : ''}`);
    daemons.set(name, await startDaemon(config, { log: silentLogger }));
  }
  const lanLeader = async (): Promise<'lan-a' | 'lan-b'> => {
    let found: 'lan-a' | 'lan-b' | undefined;
    await until('a LAN node leads', () => {
      found = (['lan-a', 'lan-b'] as const).find((n) => daemons.get(n)!.state.isLeader());
      return found !== undefined;
    }, 30_000);
    return found!;
  };
  // Clients lease from whoever leads (on a loaded machine an election may come in between: the
  // client retries, as a real one does).
  const acked = new Map<string, string>();
  for (let i = 0; i < 6; i++) {
    const mac = `52:54:00:00:60:0${i}`;
    for (let attempt = 0; attempt < 3 && !acked.has(mac); attempt++) {
      const at = await lanLeader();
      try {
        acked.set(mac, (await dhcpProbe({ server: '127.0.0.1', port: dhcpPorts[at], mac, hostname: `audit${i}`, timeoutMs: 5000 })).acked);
      } catch { /* leadership moved: ask the new leader */ }
    }
  }
  t.equal(new Set(acked.values()).size, 6, `six clients leased: ${[...acked.values()].join(', ')}`);
  // Hand leadership over (again from the new leader if it moved on its own meanwhile, as lanctl failover is rerun).
  let leader = await lanLeader();
  let before = await audit(daemons.get(leader)!);
  let handed = false;
  for (let attempt = 0; attempt < 3 && !handed; attempt++) {
    leader = await lanLeader();
    before = await audit(daemons.get(leader)!);
    handed = (daemons.get(leader)!.state as RaftStateLog).transferLeadership(leader === 'lan-a' ? 'lan-b' : 'lan-a');
  }
  const other = leader === 'lan-a' ? 'lan-b' : 'lan-a';
  const old = daemons.get(leader)!;
  t.ok(before.recorded >= 1, `${leader} recorded the ACKs it sent (${before.recorded})`);
  t.equal(before.lostTotal, 0);
  t.ok(handed, `leadership handed from ${leader} to ${other}`);
  await until(`${other} leads`, () => daemons.get(other)!.state.isLeader(), 30_000);
  let after = before;
  for (let i = 0; i < 200 && !(after.audits > before.audits && after.lastAudit?.leader === other); i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await audit(old);
  }
  t.ok(after.audits > before.audits, `an audit after the change (${after.audits})`);
  t.equal(after.lostTotal, 0, 'no ACKed lease lost');
  t.match(after.lastAudit, { leader: other, checked: before.recorded, lost: 0, pending: 0, unknown: 0 });
  t.equal((after.lastAudit?.kept ?? 0) + (after.lastAudit?.superseded ?? 0), before.recorded, 'every ACK found in the committed log');

  const sock = ['--socket', `${dir}/${leader}.sock`];
  const human = await runLanctl(['status', ...sock]);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, new RegExp(`ACKed leases lost: 0 \\(last audit \\S+ under leader ${other}, term \\d+: ${before.recorded} ACKs? checked`), 'lanctl status says it');
  const json = JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { ackAudit: AckAuditSummary };
  t.match(json.ackAudit, { lostTotal: 0, audits: after.audits, recorded: before.recorded }, 'and --json');

  const page = await get(httpPorts[leader], '/');
  t.match(page, /data-testid="acked-lost"><span class="badge ok">0</, 'the / page shows 0 lost');
  t.match(page, new RegExp(`data-testid="acked-audit">ACKed leases lost: 0 \\(last audit [^<]* ${before.recorded} ACKs? checked`));
  const metrics = await get(httpPorts[leader], '/metrics');
  t.match(metrics, /^lanha_dhcp_acked_leases_lost_total 0$/m);
  t.match(metrics, new RegExp(`^lanha_dhcp_ack_audits_total ${after.audits}$`, 'm'));

  // The new leader's page shows the old leader's audit, as the old leader reports it over the cluster.
  let card = '';
  for (let i = 0; i < 50 && !card.startsWith('0 (its last audit'); i++) {
    card = new RegExp(`data-testid="member-${leader}-acked-lost">([^<]*)<`).exec(await get(httpPorts[other], '/'))?.[1] ?? '';
    if (!card.startsWith('0 (its last audit')) await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(card, `0 (its last audit checked ${before.recorded} ACK${before.recorded === 1 ? '' : 's'})`, `${other}'s page shows ${leader}'s audit`);
  const fresh = await audit(daemons.get(other)!);
  t.equal(fresh.lostTotal, 0, `${other} (leading now) lost none of its own ACKs either`);
});

t.test('kill -9 of a one-node daemon: after the restart it audits the ACKs it sent before it died', async (t) => {
  const { yaml, dhcpPort } = await opsDaemonConfig({ node: 'solo', net: '127.0.61', poolLast: 30, domain: 'rack.lan' });
  const scratch = scratchConfig(yaml);
  t.teardown(scratch.cleanup);
  const sock = ['--socket', `${scratch.dir}/s.sock`];
  let daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  for (let i = 0; i < 3; i++) await dhcpProbe({ server: '127.0.0.1', port: dhcpPort, mac: `52:54:00:00:61:0${i}`, timeoutMs: 5000 });
  const before = (JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { ackAudit: AckAuditSummary }).ackAudit;
  t.match(before, { recorded: 3, audits: 0 }, 'three ACKs recorded, no leadership change yet');
  daemon.child.kill('SIGKILL');
  await new Promise((r) => daemon.child.once('exit', r));
  daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  let after = before;
  for (let i = 0; i < 100 && after.audits === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = (JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { ackAudit: AckAuditSummary }).ackAudit;
  }
  t.equal(after.audits, 1, 'audited after the restart (the journal kept the record)');
  t.match(after.lastAudit, { leader: 'solo', checked: 3, kept: 3, lost: 0 }, 'every ACK sent before the kill is in the committed log');
  t.equal(after.lostTotal, 0);
});
