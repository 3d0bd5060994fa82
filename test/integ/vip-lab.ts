import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { LANCTL } from '../support/paths.js';
import { serveDaemon, type ServedDaemon } from '../support/daemon.js';
import type { Lab, LabHost } from '../support/netns.js';
import { startHolderSampler, type Sample } from './vip-sampler.js';

export type { Sample } from './vip-sampler.js';

// A two-server + witness lanha cluster in lab namespaces (all names lh*), with a VIP, DNS, TFTP and
// NTP on the servers, a client namespace, and a sampler that says every 50 ms which servers' kernels
// hold the VIP (vip-sampler.ts). Used by the vip-*.test.ts files; every process is tracked by the lab and stopped by
// PID when it is destroyed.

export const VIP = '10.66.0.1';
export const WWW = '10.66.0.50';

export interface VipNode {
  name: string;
  host: LabHost;
  configFile: string;
  socket: string;
  daemon: ServedDaemon | undefined;
  /** The lanctl.js this member is started with (default: this build's); an upgrade test swaps it between starts. */
  lanctl?: string;
}


export interface VipCluster {
  dir: string;
  servers: VipNode[];
  witness: VipNode;
  client: LabHost;
  samples: Sample[];
  start(node: VipNode): Promise<void>;
  holdsVip(node: VipNode): Promise<boolean>;
  /** Resolves with the first sample time at which `pred` holds, or rejects after timeoutMs. */
  waitSample(pred: (s: Sample) => boolean, timeoutMs: number, after?: number): Promise<Sample>;
  /** Waits until one server alone has held the VIP in every sample for `steadyMs`; returns its name. */
  waitSteady(steadyMs: number, timeoutMs: number): Promise<string>;
  stopSampler(): Promise<void>;
  cleanup(): void;
  /** Steps a server's wall clock to `offsetS` seconds from the host's (faketimeLib only; libfaketime reads the file at most once a second: in effect within 2 s). */
  stepWallClock(node: VipNode, offsetS: number): void;
}

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 5000 }, (error, stdout) => resolve({ code: error ? 1 : 0, stdout }));
  });
}

export interface VipClusterOptions {
  /** Extra keys for each server's vip: block, e.g. "drainTimeout: 20s". */
  vipExtra?: string;
  /** Serve DHCP on the servers (pool 10.66.0.100-199, server id the VIP), lease names in lab.test. */
  dhcp?: { leaseTime: string; renewTime: string; rebindTime: string; /** One more line of the dhcp: block, e.g. "degraded: { enabled: true, mclt: 1m }". */ extra?: string };
  /** Put each server's stateDir on its own tmpfs of this size (a disk that can fill up). */
  tmpfsStateMiB?: number;
  /** cluster.electionTimeout (default 500ms): longer keeps leadership still on an overloaded test machine. */
  electionTimeout?: string;
  /** Run the two servers on `cluster.backend: etcd` at these endpoints (the witness is then not a member and never started). */
  etcd?: { endpoints: string[]; leaseTtl: string };
  /** cluster.failoverBudget instead (cluster/timers.ts); not with electionTimeout. */
  failoverBudget?: string;
  /** cluster.snapshotEntries: a member's snapshot every N entries (a member down longer is caught up from a snapshot). */
  snapshotEntries?: number;
  /**
   * Run each server under libfaketime (LD_PRELOAD, this path) with its own offset file, `<name>.faketime`
   * in the lab directory ("+0" at start): stepWallClock() moves that server's wall clock (Date.now())
   * at run time; its monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC).
   */
  faketimeLib?: string;
}

/**
 * Runs `body` with a cluster vipCluster made, then stops its holder sampler and removes its files
 * whatever happened, and checks the host's /etc/resolv.conf was not touched: the end of every lab
 * test of a VIP cluster.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function withVipCluster(t: { ok: (...args: any[]) => unknown }, lab: Lab, c: VipCluster, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    await c.stopSampler();
    c.cleanup();
  }
  t.ok(lab.resolvConfUnchanged(), 'the host /etc/resolv.conf was not touched');
}

export async function vipCluster(lab: Lab, mode: 'fast' | 'strict', options: VipClusterOptions = {}): Promise<VipCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-vip-'));
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const a = await lab.addHost('a', '10.66.0.2/24');
  const b = await lab.addHost('b', '10.66.0.3/24');
  const w = await lab.addHost('w', '10.66.0.9/24');
  const client = await lab.addHost('cli', '10.66.0.10/24');
  const members = [
    { name: 'lan-a', host: a, role: 'server' },
    { name: 'lan-b', host: b, role: 'server' },
    { name: 'witness', host: w, role: 'witness' },
  ];
  const tmpfsMounts: string[] = [];
  const nodes = members.map((m): VipNode => {
    const configFile = join(dir, `${m.name}.yaml`);
    const socket = join(dir, `${m.name}.sock`);
    const lines = [
      `node: { name: ${m.name}, role: ${m.role}, address: ${m.host.address}, stateDir: "${dir}/${m.name}", controlSocket: "${socket}", logLevel: info }`,
      'cluster:',
      '  id: vip-lab',
      ...(options.electionTimeout ? [`  electionTimeout: ${options.electionTimeout}`] : []),
      ...(options.failoverBudget ? [`  failoverBudget: ${options.failoverBudget}`] : []),
      ...(options.snapshotEntries ? [`  snapshotEntries: ${options.snapshotEntries}`] : []),
      `  keyFile: "${keyFile}"`,
      ...(options.etcd ? ['  backend: etcd', `  etcd: { endpoints: [${options.etcd.endpoints.map((e) => `"${e}"`).join(', ')}], leaseTtl: ${options.etcd.leaseTtl} }`] : []),
      '  members:',
      ...members.filter((o) => !options.etcd || o.role === 'server').map((o) => `    - { name: ${o.name}, address: ${o.host.address}, port: 7400, role: ${o.role} }`),
    ];
    if (m.role === 'server') {
      // Each server's TFTP root says who it is, so a fetch from the VIP shows which node answered.
      mkdirSync(join(dir, `tftp-${m.name}`), { recursive: true });
      writeFileSync(join(dir, `tftp-${m.name}`, 'who.txt'), `${m.name}\n`);
      lines.push(
        `tftp: { root: "${dir}/tftp-${m.name}", workers: 0 }`,
        'ntp: { localStratum: 10, samplePeer: false }',
        `vip: { address: ${VIP}/24, interface: ${m.host.ifname}, mode: ${mode}, lifetimeSeconds: 2${options.vipExtra ? `, ${options.vipExtra}` : ''} }`,
        'dns:',
        '  workers: 0',
        '  zones:',
        '    - name: lab.test',
        `      records: ["www A ${WWW}"]`,
      );
      if (options.dhcp) {
        lines.push(
          '      leases: true',
          'dhcp:',
          `  interface: ${m.host.ifname}`,
          `  serverId: ${VIP}`,
          ...(options.dhcp.extra === undefined ? [] : [`  ${options.dhcp.extra}`]),
          '  subnets:',
          '    - subnet: 10.66.0.0/24',
          '      pools: [10.66.0.100-10.66.0.199]',
          `      dns: [${VIP}]`,
          '      domain: lab.test',
          `      leaseTime: ${options.dhcp.leaseTime}`,
          `      renewTime: ${options.dhcp.renewTime}`,
          `      rebindTime: ${options.dhcp.rebindTime}`,
        );
      }
      if (options.tmpfsStateMiB !== undefined) {
        mkdirSync(join(dir, m.name), { recursive: true });
        tmpfsMounts.push(join(dir, m.name));
      }
    }
    writeFileSync(configFile, lines.join('\n') + '\n');
    return { name: m.name, host: m.host, configFile, socket, daemon: undefined };
  });
  const servers = nodes.slice(0, 2);
  const witness = nodes[2]!;
  const faketimeFile = (node: VipNode): string => join(dir, `${node.name}.faketime`);
  if (options.faketimeLib !== undefined) for (const s of servers) writeFileSync(faketimeFile(s), '+0s\n');
  for (const mount of tmpfsMounts) {
    const r = await run('mount', ['-t', 'tmpfs', '-o', `size=${options.tmpfsStateMiB}m,mode=0700`, 'lanha-lab-state', mount]);
    if (r.code !== 0) throw new Error(`mount tmpfs on ${mount} failed`);
  }

  const sampler = await startHolderSampler(lab, servers.map((s) => ({ name: s.name, ns: s.host.ns, ifname: s.host.ifname })), VIP);
  const holdsVip = (node: VipNode): Promise<boolean> => sampler.holds({ name: node.name, ns: node.host.ns, ifname: node.host.ifname });

  return {
    dir,
    servers,
    witness,
    client,
    samples: sampler.samples,
    holdsVip,
    async start(node) {
      const faketime = options.faketimeLib !== undefined && node !== witness ? [
        'env', `LD_PRELOAD=${options.faketimeLib}`, `FAKETIME_TIMESTAMP_FILE=${faketimeFile(node)}`,
        // Re-read the offset file once a second (not at every clock read), and leave CLOCK_MONOTONIC alone.
        'FAKETIME_CACHE_DURATION=1', 'FAKETIME_DONT_FAKE_MONOTONIC=1',
      ] : [];
      node.daemon = await serveDaemon(node.configFile, { command: ['ip', 'netns', 'exec', node.host.ns, ...faketime, process.execPath, node.lanctl ?? LANCTL], timeoutMs: 60_000 });
      lab.track(node.daemon.child);
    },
    waitSample: (pred, timeoutMs, after) => sampler.waitSample(pred, timeoutMs, after),
    waitSteady: (steadyMs, timeoutMs) => sampler.waitSteady(steadyMs, timeoutMs),
    async stopSampler() {
      sampler.stop();
    },
    stepWallClock(node, offsetS) {
      if (options.faketimeLib === undefined) throw new Error('stepWallClock needs the cluster started with faketimeLib');
      writeFileSync(faketimeFile(node), `${offsetS >= 0 ? '+' : ''}${offsetS}s\n`);
    },
    cleanup() {
      // Members still running write into dir while it is removed (ENOTEMPTY): end them first. The
      // lab ends its tracked processes again later; a member already gone is skipped.
      for (const node of nodes) {
        const child = node.daemon?.child;
        if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      for (const mount of tmpfsMounts) {
        try { execFileSync('umount', ['-l', mount], { stdio: 'ignore' }); } catch { /* not mounted */ }
      }
      // A killed member's last writes may still land for a moment: rmSync retries ENOTEMPTY/EBUSY.
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}

/** The samples from `from` on in which both servers held the VIP at once. */
export function overlaps(samples: readonly Sample[], from = -Infinity, to = Infinity): Sample[] {
  return samples.filter((s) => s.at >= from && s.at <= to && s.holders.length > 1);
}

/** One A query to the VIP from the client namespace; returns the answer lines. */
export async function digVip(client: LabHost): Promise<string> {
  const r = await client.exec('dig', ['+time=1', '+tries=2', '+short', `@${VIP}`, 'www.lab.test', 'A'], { timeoutMs: 10_000 });
  return r.stdout.trim();
}

/** Fetches who.txt over TFTP from the VIP: the name of the node that answered, or the error. */
export async function tftpWho(client: LabHost): Promise<string> {
  const r = await client.exec('curl', ['-sS', '--max-time', '5', `tftp://${VIP}/who.txt`], { timeoutMs: 10_000 });
  return (r.stdout + (r.code === 0 ? '' : r.stderr)).trim();
}

/** One NTP query to the VIP (ntpdate -q); true when a server answered with usable time. */
export async function ntpAnswers(client: LabHost): Promise<boolean> {
  const r = await client.exec('ntpdate', ['-q', VIP], { timeoutMs: 15_000 });
  return r.code === 0;
}
