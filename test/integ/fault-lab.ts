import { readFileSync, existsSync, writeFileSync, chmodSync, rmSync, mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, type ChildProcess } from 'node:child_process';
import type { Lab, LabHost } from '../support/netns.js';
import { callDaemon } from '../../lib/control-client.js';
import { longestGapMs, monotonicNowMs, startEchoResponder, startProber, type Prober, type Protocol } from '../support/prober.js';
import { vipCluster, VIP, type VipCluster, type VipNode } from './vip-lab.js';
import { twoHolderMs } from './vip-sampler.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd.js';

// The failover fault suite's lab (HA.md §4, issue 12): lan-a, lan-b and the witness as real
// `lanctl serve` processes (DHCP, DNS with lease names, TFTP, NTP, VIP; each server's stateDir on a
// small tmpfs), udhcpc clients with distinct MACs in their own namespaces acquiring and renewing
// (every ACK is logged by their script), a prober sending DNS, NTP, TFTP and DHCPINFORM to the VIP
// every 50 ms, and the VIP sampler on both servers. It is set up once; faults run one after the
// other (faults.ts), each followed by the checkers here:
//   ACKed leases lost, the same address ACKed to two MACs, two VIP holders (ms), lease names that do
//   not resolve on both servers, and both servers at the same applied index and state hash.
// With `echo` (bench:failover) each server also runs a UDP echo responder that shares its daemon's
// fate (killed, stopped and restarted with it: the faults go through kill() and restart()), probed
// on the VIP by a second prober: the VIP gap measured the way it is for keepalived in the same lab.

export const PROTOCOLS: readonly Protocol[] = ['dns', 'ntp', 'tftp', 'dhcp'];
export const PROBE_EVERY_MS = 50;
/** The lab's DHCP lease time in seconds. */
export const LEASE_S = 30;

export interface Ack {
  client: string;
  event: string;
  ip: string;
  mac: string;
  leaseS: number;
  /** Wall-clock ms the client took the ACK (the host clock: faults never step it). */
  at: number;
}

export interface ClusterView {
  role: string;
  leader: string | null;
  appliedIndex: number;
  commitIndex: number;
  stateHash: string;
}

export interface FaultOutcome {
  fault: string;
  gaps: Record<Protocol, number>;
  twoHolderMs: number;
  lostAcked: string[];
  /** What each server's own ACK audit says (cluster/ack-audit.ts): ACKs checked in its last audit, lost since it started. */
  audits: Array<{ server: string; checked: number | null; lost: number }>;
  duplicates: string[];
  /** Leases whose expiry on a server lies more than one lease time ahead of now (a leader stamping log time from a stepped clock). */
  farExpiry: string[];
  unresolved: string[];
  converged: boolean;
  /** What the fault itself found wrong while it ran (e.g. the clock step: lines the leader must not log). */
  faultFindings: string[];
  /** Clients whose lease ran out during the fault before they could renew it. */
  expired: string[];
  detail: string[];
  /** Longest silence of the echo probe on the VIP (FaultLab option `echo`), else null. */
  echoGapMs: number | null;
  /** Members whose daemon exited on its own during the round (no fault kills without restarting), with how and its last log lines; restarted after the checkers. */
  exited: string[];
  /**
   * The leader before the fault and what became of its VIP meanwhile: the lines it logged letting
   * the VIP go (`vip.released`, `vip.guard_expired`), the samples (every 50 ms) in which it did not
   * hold it, and the DNS probes answered. A fault that kills a non-leader (follower, witness) must
   * leave all of it with the leader, which keeps a quorum: no release, no sample away, DNS answering.
   */
  leaderHold: { leader: string; releases: string[]; samplesAway: number; samples: number; dnsAnswered: number };
}

export interface EchoOptions {
  /** UDP port of the echo responders. */
  port: number;
  /** Probe interval of the echo prober. */
  everyMs: number;
}

interface Client {
  name: string;
  mac: string;
  host: LabHost;
  log: string;
}

function run(command: string, args: readonly string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: timeoutMs }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FaultLab {
  readonly lab: Lab;
  readonly c: VipCluster;
  readonly clients: Client[];
  readonly prober: Prober;
  readonly probeHost: LabHost;
  /** The lanha members running: both servers, and the witness on the Raft backend. */
  readonly members: VipNode[];
  /** The etcd cluster the servers run on (`etcd: true`), else null. */
  readonly etcd: EtcdCluster | null;
  readonly echo: EchoOptions | null;
  #echoProber: Prober | null = null;
  /** Each server's echo responder (option `echo`), by server name. */
  #companions = new Map<string, ChildProcess>();

  private constructor(lab: Lab, c: VipCluster, clients: Client[], prober: Prober, probeHost: LabHost, etcd: EtcdCluster | null, echo: EchoOptions | null) {
    this.lab = lab;
    this.etcd = etcd;
    this.echo = echo;
    this.members = etcd ? [...c.servers] : [...c.servers, c.witness];
    this.c = c;
    this.clients = clients;
    this.prober = prober;
    this.probeHost = probeHost;
  }

  /** Builds the lab, starts the cluster and the clients, and waits until every client is bound. */
  static async create(lab: Lab, options: { clients?: number; electionTimeout?: string; failoverBudget?: string; etcd?: { leaseTtl: string }; echo?: EchoOptions; faketimeLib?: string; lanctl?: string; snapshotEntries?: number } = {}): Promise<FaultLab> {
    const clientCount = options.clients ?? 6;
    // cluster.backend etcd: a 3-member etcd in its own namespace; the servers run on it, no witness.
    const etcd = options.etcd ? await startEtcdCluster(3, { host: await lab.addHost('etcd', '10.66.0.20/24') }) : null;
    const c = await vipCluster(lab, 'fast', {
      dhcp: { leaseTime: `${LEASE_S}s`, renewTime: '5s', rebindTime: '20s' }, tmpfsStateMiB: 32,
      ...(options.electionTimeout !== undefined ? { electionTimeout: options.electionTimeout } : {}),
      ...(options.failoverBudget !== undefined ? { failoverBudget: options.failoverBudget } : {}),
      ...(options.faketimeLib !== undefined ? { faketimeLib: options.faketimeLib } : {}),
      ...(options.snapshotEntries !== undefined ? { snapshotEntries: options.snapshotEntries } : {}),
      ...(etcd && options.etcd ? { etcd: { endpoints: etcd.endpoints, leaseTtl: options.etcd.leaseTtl } } : {}),
    });
    const members = etcd ? [...c.servers] : [...c.servers, c.witness];
    if (options.lanctl !== undefined) for (const n of members) n.lanctl = options.lanctl;
    try {
      await Promise.all(members.map((n) => c.start(n)));
      await c.waitSteady(1000, 60_000);
      const clients: Client[] = [];
      for (let i = 1; i <= clientCount; i++) {
        const name = `c${String(i).padStart(2, '0')}`;
        const host = await lab.addHost(`dh${i}`, null);
        const mac = `02:66:00:00:01:${i.toString(16).padStart(2, '0')}`;
        await host.exec('ip', ['link', 'set', 'dev', host.ifname, 'address', mac]);
        const log = join(c.dir, `${name}.acks`);
        const script = join(c.dir, `${name}.sh`);
        writeFileSync(script, `#!/bin/sh
case "$1" in
  bound|renew)
    at=$(date +%s%3N)
    ip addr replace "$ip/$subnet" dev "$interface"
    echo "$1 $ip ${mac} $lease $at" >> ${log} ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
`);
        chmodSync(script, 0o755);
        host.spawn('udhcpc', ['-f', '-i', host.ifname, '-s', script, '-t', '1000', '-T', '1', '-A', '1', '-x', `hostname:${name}`], { stdio: 'ignore' });
        clients.push({ name, mac, host, log });
      }
      const probeHost = c.client;
      const prober = startProber(lab, probeHost, { target: VIP, everyMs: PROBE_EVERY_MS, protocols: PROTOCOLS });
      const fl = new FaultLab(lab, c, clients, prober, probeHost, etcd, options.echo ?? null);
      if (options.echo) {
        for (const s of c.servers) fl.#startCompanion(s);
        fl.#echoProber = startProber(lab, probeHost, { target: VIP, everyMs: options.echo.everyMs, protocols: ['echo'], echoPort: options.echo.port });
      }
      const bound = await fl.#until(() => fl.acks().length > 0 && clients.every((cl) => fl.acks().some((a) => a.client === cl.name)), 60_000);
      if (!bound) throw new Error(`not every DHCP client got a lease within 60 s (${fl.acks().length} ACKs)`);
      return fl;
    } catch (error) {
      for (const n of members) writeFileSync(`/tmp/failover-debug-${n.name}.log`, n.daemon?.logs() ?? '');
      await c.stopSampler();
      c.cleanup();
      await etcd?.stop();
      throw error;
    }
  }

  /** Each member's log, to /tmp/failover-debug-<name>.log (FAULT_DEBUG=1 or after a failure). */
  dumpLogs(): void {
    for (const n of this.members) writeFileSync(`/tmp/failover-debug-${n.name}.log`, n.daemon?.logs() ?? '');
  }

  /** Each member's log and every client's ACK log so far, into a new directory under the temp dir (kept after the lab); returns it. */
  dumpRound(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `lanha-failover-${label}-`));
    for (const n of this.members) writeFileSync(join(dir, `${n.name}.log`), n.daemon?.logs() ?? '');
    for (const cl of this.clients) if (existsSync(cl.log)) copyFileSync(cl.log, join(dir, `${cl.name}.acks`));
    return dir;
  }

  #startCompanion(node: VipNode): void {
    if (this.echo === null || !this.c.servers.includes(node)) return;
    this.#companions.set(node.name, startEchoResponder(this.lab, node.host, node.name, this.echo.port));
  }

  /** Signals a member's daemon, and its echo responder (option `echo`) with it. Only our own PIDs. */
  kill(node: VipNode, signal: NodeJS.Signals): void {
    node.daemon!.child.kill(signal);
    this.#companions.get(node.name)?.kill(signal);
  }

  /** Starts a member again after a kill (and its echo responder when that is gone too). */
  async restart(node: VipNode): Promise<void> {
    await this.c.start(node);
    const companion = this.#companions.get(node.name);
    if (companion !== undefined && (companion.exitCode !== null || companion.signalCode !== null)) this.#startCompanion(node);
  }

  async close(): Promise<void> {
    await this.#echoProber?.stop();
    await this.prober.stop();
    await this.c.stopSampler();
    try {
      this.c.cleanup();
    } finally {
      await this.etcd?.stop();
    }
  }

  async #until(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      if (await check()) return true;
      if (performance.now() > end) return false;
      await sleep(everyMs);
    }
  }

  /** Every ACK the clients logged so far. */
  acks(): Ack[] {
    const out: Ack[] = [];
    for (const cl of this.clients) {
      if (!existsSync(cl.log)) continue;
      for (const line of readFileSync(cl.log, 'utf8').split('\n')) {
        const [event, ip, mac, lease, at] = line.split(' ');
        if (event && ip && mac && lease && at) out.push({ client: cl.name, event, ip, mac, leaseS: Number(lease), at: Number(at) });
      }
    }
    return out;
  }

  /** The cluster as one member's control API reports it (null when it does not answer). */
  async view(node: VipNode): Promise<ClusterView | null> {
    const reply = await callDaemon(node.socket, 'GET', '/v1/status', undefined, 3000).catch(() => null);
    if (reply?.status !== 200) return null;
    const cl = (reply.body as { cluster?: ClusterView }).cluster;
    return cl ?? null;
  }

  /** The leader and the follower once one server alone has held the VIP for a second and leads. */
  async steady(timeoutMs = 60_000): Promise<{ leader: VipNode; follower: VipNode }> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const name = await this.c.waitSteady(1000, Math.max(1000, end - performance.now()));
      const leader = this.c.servers.find((s) => s.name === name)!;
      const v = await this.view(leader);
      if (v?.role === 'leader') return { leader, follower: this.c.servers.find((s) => s !== leader)! };
      if (performance.now() > end) throw new Error(`no steady leader within ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  /** Waits until both servers (and the witness) report the same applied index and state hash. */
  async converge(timeoutMs = 20_000): Promise<{ ok: boolean; detail: string }> {
    let detail = '';
    const ok = await this.#until(async () => {
      const views = await Promise.all(this.members.map((n) => this.view(n)));
      detail = views.map((v, i) => `${this.members[i]!.name}: ${v ? `${v.role} applied ${v.appliedIndex} hash ${v.stateHash.slice(0, 8)}` : 'no answer'}`).join('; ');
      if (views.some((v) => v === null)) return false;
      const [a, ...rest] = views as ClusterView[];
      // On etcd the commit index is etcd's revision, which election keys move too: applied index and hash say it.
      return rest.every((v) => v.appliedIndex === a!.appliedIndex && v.stateHash === a!.stateHash) && (this.etcd !== null || a!.commitIndex === a!.appliedIndex);
    }, timeoutMs, 250);
    return { ok, detail };
  }

  /** Milliseconds during which both servers held the VIP (sampled every 50 ms) between from and to (performance.now()). */
  twoHolderMs(from: number, to: number): number {
    return twoHolderMs(this.c.samples, from, to);
  }

  /** Longest silence per protocol on the VIP between two monotonic instants. */
  gaps(from: number, to: number): Record<Protocol, number> {
    const out = {} as Record<Protocol, number>;
    for (const p of PROTOCOLS) out[p] = longestGapMs(this.prober.answers, p, PROBE_EVERY_MS, from, to);
    return out;
  }

  /**
   * Every client's latest ACK whose lease has not run out yet must be a committed binding on both
   * servers (same ip, expiry not earlier). A lease that ran out because the client could not renew
   * in time (busybox udhcpc renews at half the lease, whatever T1 says) is not lost; it is listed by
   * expiredUnrenewed().
   */
  async lostAcked(): Promise<string[]> {
    const latest = this.#latestLive();
    const lost: string[] = [];
    for (const server of this.c.servers) {
      const reply = await callDaemon(server.socket, 'GET', '/v1/leases', undefined, 5000).catch(() => null);
      if (reply?.status !== 200) { lost.push(`${server.name}: no lease list`); continue; }
      const rows = (reply.body as { leases: Array<{ ip: string; mac: string; state: string; expiresAt: string }> }).leases;
      for (const ack of latest.values()) {
        const row = rows.find((r) => r.mac === ack.mac && r.ip === ack.ip && r.state === 'bound');
        const expiresAt = row === undefined ? -Infinity : Date.parse(row.expiresAt);
        // 2 s of slack: the ACK time is taken by the client's script after the ACK arrived.
        // How short says which it is: a lost renewal leaves the previous one (about half a lease short).
        if (expiresAt < ack.at + ack.leaseS * 1000 - 2000) lost.push(`${server.name}: ${ack.client} ${ack.mac} ${ack.ip} ACKed at ${ack.at} for ${ack.leaseS} s: ${row ? `expires ${Math.round(expiresAt)}, ${ack.at + ack.leaseS * 1000 - expiresAt} ms before the client's lease ends` : 'missing'}`);
      }
    }
    return lost;
  }

  /** Each server's own ACK audit, as its status reports it (a server that does not answer: lost -1). */
  async audits(): Promise<FaultOutcome['audits']> {
    const out: FaultOutcome['audits'] = [];
    for (const server of this.c.servers) {
      const reply = await callDaemon(server.socket, 'GET', '/v1/status', undefined, 5000).catch(() => null);
      const a = (reply?.body as { ackAudit?: { lostTotal: number; lastAudit: { checked: number } | null } } | undefined)?.ackAudit;
      out.push({ server: server.name, checked: a?.lastAudit?.checked ?? null, lost: a?.lostTotal ?? -1 });
    }
    return out;
  }

  /**
   * Leases on each server that expire more than one lease time (plus 5 s) after now on the host
   * clock: a grant or renewal committed now ends at most a lease from now, so a later end means
   * log time was stamped from a wall clock that had jumped ahead. (A later end than the client was
   * told is not by itself wrong: a renewal committed whose ACK the client never got extends it.)
   */
  async farExpiry(): Promise<string[]> {
    const out: string[] = [];
    for (const server of this.c.servers) {
      const reply = await callDaemon(server.socket, 'GET', '/v1/leases', undefined, 5000).catch(() => null);
      if (reply?.status !== 200) { out.push(`${server.name}: no lease list`); continue; }
      const limit = Date.now() + LEASE_S * 1000 + 5000;
      for (const row of (reply.body as { leases: Array<{ ip: string; mac: string; expiresAt: string }> }).leases) {
        const end = Date.parse(row.expiresAt);
        if (end > limit) out.push(`${server.name}: ${row.mac} ${row.ip} expires ${row.expiresAt}, ${Math.round((end - Date.now()) / 1000)} s from now (leases are ${LEASE_S} s)`);
      }
    }
    return out;
  }

  /** The latest ACK of each client whose lease still runs (2 s of slack). */
  #latestLive(): Map<string, Ack> {
    const latest = new Map<string, Ack>();
    for (const a of this.acks()) if ((latest.get(a.client)?.at ?? -1) <= a.at) latest.set(a.client, a);
    for (const [client, a] of latest) if (a.at + a.leaseS * 1000 - 2000 <= Date.now()) latest.delete(client);
    return latest;
  }

  /** Clients whose latest lease ran out before they could renew it (an availability figure). */
  expiredUnrenewed(): string[] {
    const live = this.#latestLive();
    return this.clients.filter((c) => !live.has(c.name)).map((c) => c.name);
  }

  /**
   * Addresses ACKed to two MACs over overlapping lease intervals (from the clients' own logs). A
   * client holds one address: its interval on an address ends at its next ACK of another one (the
   * server moved its binding; the client dropped the old address), else a lease time after the ACK.
   * Before that cut, a client that was NAKed and bound a new address was counted as still holding
   * the old one when the server rightly gave it to another (bench:failover, a kill -9 round).
   */
  duplicates(): string[] {
    return duplicateAcks(this.acks());
  }

  /** Lease names (cNN.lab.test) that do not resolve to the client's address on each server. */
  async unresolved(): Promise<string[]> {
    const latest = this.#latestLive();
    const out: string[] = [];
    for (const server of this.c.servers) {
      const names = [...latest.keys()].map((n) => `${n}.lab.test`);
      const r = await this.probeHost.exec('dig', ['+noall', '+answer', '+time=2', '+tries=2', `@${server.host.address}`, ...names.flatMap((n) => [n, 'A'])], { timeoutMs: 20_000 });
      const answers = new Map<string, string>();
      for (const line of r.stdout.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length >= 5 && f[3] === 'A') answers.set(f[0]!.replace(/\.$/, ''), f[4]!);
      }
      for (const [client, ack] of latest) {
        const got = answers.get(`${client}.lab.test`);
        if (got !== ack.ip) out.push(`${server.name}: ${client}.lab.test -> ${got ?? 'nothing'} (leased ${ack.ip})`);
      }
    }
    return out;
  }

  /** Runs one fault: `inject` breaks something and heals it; then every checker runs. */
  async runFault(fault: string, inject: (roles: { leader: VipNode; follower: VipNode }) => Promise<void | string[]>): Promise<FaultOutcome> {
    const roles = await this.steady();
    await sleep(300);
    const fromPerf = performance.now();
    const fromMono = monotonicNowMs();
    const leaderLogFrom = roles.leader.daemon?.logs().length ?? 0;
    const leaderDaemon = roles.leader.daemon;
    const seen = await inject(roles);
    // Up to the end of the fault (the heal included), before the checkers wait for convergence.
    const injectedPerf = performance.now();
    const injectedMono = monotonicNowMs();
    const window = this.c.samples.filter((x) => x.at >= fromPerf && x.at <= injectedPerf);
    const leaderHold = {
      leader: roles.leader.name,
      // The same daemon only: a fault that restarts the leader starts a new log.
      releases: roles.leader.daemon === leaderDaemon
        ? (leaderDaemon?.logs() ?? '').slice(leaderLogFrom).split('\n').filter((l) => /"event":"(vip\.released|vip\.guard_expired)"/.test(l)).map((l) => l.slice(0, 240))
        : ['the leader was restarted'],
      samplesAway: window.filter((x) => !x.holders.includes(roles.leader.name)).length,
      samples: window.length,
      dnsAnswered: this.prober.answers.filter((a) => a.protocol === 'dns' && a.sentAt >= fromMono && a.sentAt <= injectedMono).length,
    };
    await this.steady();
    await this.converge();
    // Let every client renew once after the heal (renewTime 5 s), so lost ACKs would show.
    await sleep(1000);
    // Judge lost ACKs on states that have caught up with those renewals: a member that was cut off
    // took seconds to hear the leader again after the heal while a blackholed TCP link waited for
    // TCP's retransmission back-off (the transport's dead-link detection now redials within about a
    // second: test/integ/raft-link-heal.test.ts), and its lease list lagged by as much. What must
    // never happen is an ACK missing once every member holds the same applied index and state.
    const conv = await this.converge();
    const toPerf = performance.now();
    const toMono = monotonicNowMs();
    const outcome: FaultOutcome = {
      fault,
      gaps: this.gaps(fromMono, toMono),
      twoHolderMs: this.twoHolderMs(fromPerf, toPerf),
      lostAcked: await this.lostAcked(),
      audits: await this.audits(),
      duplicates: this.duplicates(),
      farExpiry: await this.farExpiry(),
      unresolved: await this.unresolved(),
      converged: conv.ok,
      expired: this.expiredUnrenewed(),
      detail: [conv.detail],
      faultFindings: seen ?? [],
      echoGapMs: this.#echoProber === null ? null : longestGapMs(this.#echoProber.answers, 'echo', this.#echoProber.everyMs, fromMono, toMono),
      exited: [],
      leaderHold,
    };
    // A daemon that died by itself (a crash) is named with its last log lines and started again, so
    // the next round has every member.
    for (const n of this.members) {
      const child = n.daemon?.child;
      if (child === undefined || (child.exitCode === null && child.signalCode === null)) continue;
      outcome.exited.push(`${n.name} exited (code ${child.exitCode}, signal ${child.signalCode}): ${(n.daemon?.logs() ?? '').trim().split('\n').slice(-6).join(' | ').slice(-1500)}`);
      this.kill(n, 'SIGKILL');
      await this.restart(n);
    }
    return outcome;
  }
}

/** Fills a tmpfs-backed stateDir (the file is removed by the returned function). */
export async function fillDisk(dir: string): Promise<() => void> {
  const file = join(dir, 'lanha-lab-ballast');
  const df = await run('df', ['-B1', '--output=avail', dir]);
  const avail = Number(df.stdout.trim().split('\n').at(-1));
  await run('fallocate', ['-l', String(Math.max(4096, avail)), file]);
  // fallocate can leave a little; top it up byte by byte is not needed: dd fills the rest.
  await run('dd', ['if=/dev/zero', `of=${file}.2`, 'bs=4096'], 20_000);
  return () => {
    rmSync(file, { force: true });
    rmSync(`${file}.2`, { force: true });
  };
}

export { sleep, run };

/** See FaultLab.duplicates(): each ACK's interval, cut at the same MAC's next ACK of another address. */
export function duplicateAcks(acks: readonly Ack[]): string[] {
  const byMac = new Map<string, Ack[]>();
  for (const a of acks) byMac.set(a.mac, [...(byMac.get(a.mac) ?? []), a]);
  const intervals: Array<{ ack: Ack; end: number }> = [];
  for (const list of byMac.values()) {
    const sorted = [...list].sort((x, y) => x.at - y.at);
    sorted.forEach((a, i) => {
      const moved = sorted.slice(i + 1).find((b) => b.ip !== a.ip);
      intervals.push({ ack: a, end: Math.min(a.at + a.leaseS * 1000, moved?.at ?? Infinity) });
    });
  }
  const out: string[] = [];
  for (const x of intervals) {
    for (const y of intervals) {
      if (x.ack.ip !== y.ack.ip || x.ack.mac >= y.ack.mac) continue;
      if (x.ack.at < y.end && y.ack.at < x.end) out.push(`${x.ack.ip}: ${x.ack.mac} at ${x.ack.at} and ${y.ack.mac} at ${y.ack.at}`);
    }
  }
  return out;
}
