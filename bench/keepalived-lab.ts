import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Lab, LabHost } from '../test/support/netns.js';
import { longestGapMs, monotonicNowMs, startEchoResponder, startProber, type Prober } from '../test/support/prober.js';
import { startHolderSampler, twoHolderMs, type HolderSampler } from '../test/integ/vip-sampler.js';
import { cutPorts, linkDownFor, pauseFor } from '../test/integ/faults.js';
import { sleep } from '../test/integ/fault-lab.js';

// keepalived in the failover fault lab (bench:failover, issue 12): the anchor for the VIP gap and
// the A-B cut. lan-a and lan-b's namespaces each get a second link to the same bridge (10.67.0.0/24,
// kept apart from lanha's ports by an nft table in the switch namespace, so a fault on one stack's
// link never touches the other) and run keepalived as VRRPv3 peers on it (advert_int 0.1, both
// BACKUP with nopreempt, priorities 150/100; its own VIP 10.67.0.100). Behind the VIP, each node
// runs a UDP echo responder that shares keepalived's fate (killed, stopped and restarted with it),
// the service a client reaches; the client namespace probes it on the VIP every ECHO_EVERY_MS with
// the same prober lanha's echo is probed with, and the holders are sampled with the same sampler.
// Config and pid files live in a temp dir; every process is started here and ended by PID.

export const KVIP = '10.67.0.100';
/** The echo port behind keepalived's VIP (lanha's echo is on LANHA_ECHO_PORT, behind its own VIP). */
export const KEEPALIVED_ECHO_PORT = 9702;
export const LANHA_ECHO_PORT = 9701;
export const ECHO_EVERY_MS = 20;
export const ADVERT_S = 0.1;

interface KaNode {
  name: string;
  host: LabHost;
  ifname: string;
  bridgePort: string;
  priority: number;
  configFile: string;
  pidFile: string;
  vrrpPidFile: string;
  logFile: string;
  /** keepalived's parent process (started with -n, so this is keepalived itself). */
  parent: ChildProcess | undefined;
  /** The VRRP child's PID, read from its pid file. */
  vrrpPid: number | undefined;
  echo: ChildProcess | undefined;
}

export interface KaOutcome {
  fault: string;
  gapMs: number;
  twoHolderMs: number;
}

export interface KaFault {
  name: string;
  inject(kl: KeepalivedLab, roles: { master: KaNode; backup: KaNode }): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class KeepalivedLab {
  readonly lab: Lab;
  readonly dir: string;
  readonly nodes: KaNode[];
  readonly sampler: HolderSampler;
  readonly prober: Prober;

  private constructor(lab: Lab, dir: string, nodes: KaNode[], sampler: HolderSampler, prober: Prober) {
    this.lab = lab;
    this.dir = dir;
    this.nodes = nodes;
    this.sampler = sampler;
    this.prober = prober;
  }

  /** Links, isolation, configs, keepalived and the echo on both servers, the sampler and the prober; waits for one master. */
  static async create(lab: Lab, servers: ReadonlyArray<{ name: string; host: LabHost }>, client: LabHost): Promise<KeepalivedLab> {
    const dir = mkdtempSync(join(tmpdir(), 'lanha-keepalived-'));
    const nodes: KaNode[] = [];
    let kl: KeepalivedLab | undefined;
    try {
      for (const [i, s] of servers.entries()) {
        const link = await lab.addLink(s.host, `10.67.0.${2 + i}/24`);
        const base = join(dir, s.name);
        nodes.push({
          name: s.name, host: s.host, ifname: link.ifname, bridgePort: link.bridgePort, priority: i === 0 ? 150 : 100,
          configFile: `${base}.conf`, pidFile: `${base}.pid`, vrrpPidFile: `${base}.vrrp.pid`, logFile: `${base}.log`,
          parent: undefined, vrrpPid: undefined, echo: undefined,
        });
      }
      await lab.addLink(client, '10.67.0.10/24');
      // keepalived's links form their own segment of the bridge: no frame crosses between them and
      // lanha's ports (lanha's DHCP listens on every interface of its namespace, and an ARP request for
      // either VIP would be answered on both links).
      const kaPorts = `${lab.prefix}${lab.id}k*`;
      const isolate = [
        'add table bridge lhkaiso',
        'add chain bridge lhkaiso isolate { type filter hook forward priority 0; policy accept; }',
        `add rule bridge lhkaiso isolate iifname "${kaPorts}" oifname != "${kaPorts}" drop`,
        `add rule bridge lhkaiso isolate iifname != "${kaPorts}" oifname "${kaPorts}" drop`,
      ].join('\n');
      writeFileSync(join(dir, 'isolate.nft'), isolate + '\n');
      const r = await lab.execSwitch('nft', ['-f', join(dir, 'isolate.nft')]);
      if (r.code !== 0) throw new Error(`nft -f ${join(dir, 'isolate.nft')}: ${r.stderr}`);
      for (const n of nodes) writeFileSync(n.configFile, keepalivedConfig(n));
      const sampler = await startHolderSampler(lab, nodes.map((n) => ({ name: n.name, ns: n.host.ns, ifname: n.ifname })), KVIP);
      const prober = startProber(lab, client, { target: KVIP, everyMs: ECHO_EVERY_MS, protocols: ['echo'], echoPort: KEEPALIVED_ECHO_PORT });
      kl = new KeepalivedLab(lab, dir, nodes, sampler, prober);
      for (const n of nodes) await kl.start(n);
      await sampler.waitSteady(1000, 30_000);
      return kl;
    } catch (error) {
      if (kl) await kl.close();
      else rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Starts keepalived (and the echo behind the VIP) on a node; waits for the VRRP child's pid file. */
  async start(n: KaNode): Promise<void> {
    for (const f of [n.pidFile, n.vrrpPidFile]) rmSync(f, { force: true });
    const log = openSync(n.logFile, 'a');
    try {
      // -n: no fork (this child is keepalived's parent); -P: VRRP only; -l -D -G: detailed log to the console, no syslog.
      n.parent = n.host.spawn('keepalived', ['-n', '-P', '-l', '-D', '-G', '-f', n.configFile, '-p', n.pidFile, '-r', n.vrrpPidFile], { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    n.echo = startEchoResponder(this.lab, n.host, n.name, KEEPALIVED_ECHO_PORT);
    n.vrrpPid = undefined;
    for (let i = 0; i < 100 && n.vrrpPid === undefined; i++) {
      await sleep(50);
      if (existsSync(n.vrrpPidFile)) {
        const pid = Number(readFileSync(n.vrrpPidFile, 'utf8').trim());
        if (pid > 0 && alive(pid)) n.vrrpPid = pid;
      }
      if (n.parent.exitCode !== null) break;
    }
    if (n.vrrpPid === undefined) throw new Error(`keepalived on ${n.name} did not start its VRRP process (log: ${n.logFile}): ${this.log(n).slice(-500)}`);
  }

  log(n: KaNode): string {
    return existsSync(n.logFile) ? readFileSync(n.logFile, 'utf8') : '';
  }

  /** Signals keepalived's parent and VRRP processes and the echo behind the VIP on one node (our PIDs only). */
  kill(n: KaNode, signal: NodeJS.Signals): void {
    // The VRRP child is keepalived's fork of the process started here: checked by its command line before a signal.
    if (n.vrrpPid !== undefined && this.#ours(n.vrrpPid, n)) process.kill(n.vrrpPid, signal);
    n.parent?.kill(signal);
    n.echo?.kill(signal);
  }

  #ours(pid: number, n: KaNode): boolean {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(n.configFile);
    } catch {
      return false;
    }
  }

  async #gone(n: KaNode, timeoutMs: number): Promise<boolean> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      const parentGone = n.parent === undefined || n.parent.exitCode !== null || n.parent.signalCode !== null;
      const vrrpGone = n.vrrpPid === undefined || !this.#ours(n.vrrpPid, n);
      if (parentGone && vrrpGone) return true;
      await sleep(20);
    }
    return false;
  }

  /** kill -9 of a node's keepalived and echo; resolves once they are gone. */
  async crash(n: KaNode): Promise<void> {
    this.kill(n, 'SIGKILL');
    await this.#gone(n, 5000);
  }

  /** The master and the backup once one node alone has held the VIP for a second. */
  async steady(timeoutMs = 30_000): Promise<{ master: KaNode; backup: KaNode }> {
    const name = await this.sampler.waitSteady(1000, timeoutMs);
    const master = this.nodes.find((n) => n.name === name)!;
    return { master, backup: this.nodes.find((n) => n !== master)! };
  }

  /**
   * One fault as for lanha: steady master, break, heal, then wait for one holder for a second and
   * for the echo to have answered for a second (a client whose ARP entry still points at a node
   * that gave the VIP up is silent until it re-resolves; bounded at 30 s). The gap is the longest
   * echo silence, two holders from the same sampler as lanha's.
   */
  async runFault(fault: KaFault): Promise<KaOutcome> {
    const roles = await this.steady();
    await sleep(300);
    const fromPerf = performance.now();
    const fromMono = monotonicNowMs();
    await fault.inject(this, roles);
    await this.steady().catch(() => undefined);
    const end = performance.now() + 30_000;
    while (performance.now() < end && !this.#answeredThrough(1000)) await sleep(100);
    const toPerf = performance.now();
    const toMono = monotonicNowMs();
    return {
      fault: fault.name,
      gapMs: longestGapMs(this.prober.answers, 'echo', ECHO_EVERY_MS, fromMono, toMono),
      twoHolderMs: twoHolderMs(this.sampler.samples, fromPerf, toPerf),
    };
  }

  /** True when the echo answered without a silence over 200 ms through `ms` (ending 300 ms ago: later probes may still be on their way). */
  #answeredThrough(ms: number): boolean {
    const to = monotonicNowMs() - 300;
    const from = to - ms;
    const times = this.prober.answers.filter((a) => a.protocol === 'echo' && a.sentAt >= from && a.sentAt <= to).map((a) => a.sentAt).sort((x, y) => x - y);
    if (times.length === 0 || times[0]! - from > 200 || to - times.at(-1)! > 200) return false;
    return times.every((t, i) => i === 0 || t - times[i - 1]! <= 200);
  }

  async close(): Promise<void> {
    await this.prober.stop();
    this.sampler.stop();
    for (const n of this.nodes) {
      // SIGTERM: keepalived releases the VIP and ends its VRRP child; whatever is left gets SIGKILL, by PID.
      this.kill(n, 'SIGCONT');
      this.kill(n, 'SIGTERM');
      if (!(await this.#gone(n, 3000))) await this.crash(n);
      n.echo?.kill('SIGKILL');
    }
    await this.lab.execSwitch('nft', ['delete', 'table', 'bridge', 'lhkaiso']);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function keepalivedConfig(n: KaNode): string {
  // VRRPv3 (RFC 5798): advert intervals under a second need it. Both BACKUP with nopreempt, so a
  // node that comes back does not take the VIP back (lanha does not fail back either).
  return `global_defs {
  router_id ${n.name}
  vrrp_version 3
}
vrrp_instance lanha_bench {
  state BACKUP
  nopreempt
  interface ${n.ifname}
  virtual_router_id 67
  priority ${n.priority}
  advert_int ${ADVERT_S}
  virtual_ipaddress {
    ${KVIP}/24 dev ${n.ifname}
  }
}
`;
}

async function crashAndRestart(kl: KeepalivedLab, n: KaNode, downMs: number): Promise<void> {
  await kl.crash(n);
  await sleep(downMs);
  await kl.start(n);
}

function pause(seconds: number): KaFault {
  return { name: `sigstop_${seconds}s`, inject: (kl, { master }) => pauseFor((signal) => kl.kill(master, signal), seconds * 1000) };
}

/** The faults of faults.ts that mean something for keepalived, by the same names, on keepalived's master and links. */
export const KEEPALIVED_FAULTS: readonly KaFault[] = [
  { name: 'kill9_leader', inject: (kl, { master }) => crashAndRestart(kl, master, 2000) },
  pause(0.5),
  pause(2),
  pause(10),
  { name: 'link_down_leader', inject: (_kl, { master }) => linkDownFor(master.host, master.ifname, 3000) },
  {
    name: 'cut_a_b',
    async inject(kl) {
      const heal = await cutPorts(kl.lab, kl.dir, kl.nodes[0]!.bridgePort, kl.nodes[1]!.bridgePort, 'lhkacut');
      try {
        await sleep(4000);
      } finally {
        await heal();
      }
    },
  },
];
