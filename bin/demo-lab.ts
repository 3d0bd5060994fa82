import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, spawnSync } from 'node:child_process';
import { callDaemon } from '../lib/control-client.js';
import { errorMessage } from '../lib/errors.js';
import { parseIpv4, reverseName } from '../lib/ipv4.js';
import { Lab, which, type LabHost } from '../lib/netns.js';
import { LANCTL_JS as LANCTL, serveDaemon, type ServedDaemon } from '../lib/serve-daemon.js';
import { dhcpProbe } from '../services/dhcp/probe.js';
import { dnsQuery, ntpQuery, tftpGet } from './demo-probes.js';
import { DEMO_EXIT, StepPrinter, type DemoOptions } from './demo.js';
import { describeAckAudit, type AckAuditSummary } from '../cluster/ack-audit.js';
import type { ProtocolGap } from '../services/ops/tracker.js';
import type { CliIo } from './cli.js';

// `lanctl demo` as root: the whole rack in network namespaces named lhd*: lan-a, lan-b and a
// witness, two client namespaces running ISC dhclient, and a veth from this machine's own namespace
// to the lab's switch so the status pages open in a browser here. It leases, resolves (dig, from a
// client, on the VIP and on both nodes), reads TFTP and NTP from the VIP, then runs `lanctl
// failover` and a kill -9 of the leader under bounded probes (DNS, NTP, TFTP, DHCP) and prints the
// gap per protocol and the ACKed leases lost; the killed node rejoins and catches up. Everything
// it makes is deleted on exit, on error and on Ctrl-C; it touches nothing outside the lhd prefix.

const PREFIX = 'lhd-';
const NET = '172.30.213';
const VIP = `${NET}.1`;
const ROOT_ADDRESS = `${NET}.254`;
const PACKAGES: ReadonlyArray<readonly [string, string]> = [['ip', 'iproute2'], ['dhclient', 'isc-dhcp-client'], ['dig', 'bind9-dnsutils']];

interface Member { name: string; role: 'server' | 'witness'; host: LabHost; config: string; socket: string; daemon?: ServedDaemon; pastLogs?: string[] }

function sh(command: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `act` again after a failure, up to `tries` times in all; the last failure is the one thrown. */
async function retry<T>(tries: number, act: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try { return await act(); } catch (error) { if (i >= tries) throw error; }
  }
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Prerequisites: missing tools (installed as root, like npm test), a stale lab, a clashing route. */
async function prerequisites(io: CliIo, json: boolean): Promise<string | null> {
  const missing = PACKAGES.filter(([tool]) => !which(tool)).map(([, pkg]) => pkg);
  if (missing.length > 0) {
    const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
    if (!json) io.out(`installing the Debian packages the lab needs: ${line}\n`);
    const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: json ? 'ignore' : 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0 || PACKAGES.some(([tool]) => !which(tool))) return `missing Debian packages; install them with: ${line}`;
  }
  // "lhd-": test labs are "lh" + four hex digits, so they can start "lhd" but never "lhd-".
  const stale = (await sh('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX));
  if (stale.length > 0) return `a lab from an earlier demo is still there (${stale.join(', ')}); nothing was touched. Remove it with: ${stale.map((n) => `ip netns del ${n}`).join('; ')}`;
  const route = (await sh('ip', ['-4', 'route', 'show', `${NET}.0/24`])).stdout.trim();
  if (route !== '') return `${NET}.0/24 is already routed on this machine (${route}); the lab needs that prefix`;
  return null;
}

function memberConfig(dir: string, keyFile: string, m: { name: string; role: string; host: LabHost }, all: ReadonlyArray<{ name: string; role: string; host: LabHost }>): string {
  const lines = [
    `node: { name: ${m.name}, role: ${m.role}, address: ${m.host.address}, stateDir: "${dir}/${m.name}", controlSocket: "${dir}/${m.name}.sock", logLevel: info }`,
    `http: { listen: "${m.host.address}:7480" }`,
    'cluster:',
    '  id: demo',
    `  keyFile: "${keyFile}"`,
    '  members:',
    ...all.map((o) => `    - { name: ${o.name}, address: ${o.host.address}, port: 7400, role: ${o.role} }`),
  ];
  if (m.role === 'server') {
    lines.push(
      `vip: { address: ${VIP}/24, interface: ${m.host.ifname}, mode: fast, lifetimeSeconds: 2, drainTimeout: 2s }`,
      'dhcp:',
      `  interface: ${m.host.ifname}`,
      `  serverId: ${VIP}`,
      '  subnets:',
      `    - subnet: ${NET}.0/24`,
      `      pools: [${NET}.100-${NET}.199]`,
      `      dns: [${VIP}, ${NET}.2, ${NET}.3]`,
      `      ntp: [${VIP}, ${NET}.2, ${NET}.3]`,
      '      domain: demo.lan',
      '      leaseTime: 10m',
      `      reservations: [{ mac: "52:54:00:00:00:01", ip: ${NET}.11, hostname: node01 }]`,
      'dns:',
      '  workers: 0',
      '  zones:',
      '    - name: demo.lan',
      '      leases: true',
      `      records: ["@ NS ns1", "ns1 A ${VIP}", "lan-a A ${NET}.2", "lan-b A ${NET}.3"]`,
      `tftp: { root: "${dir}/tftp", workers: 0 }`,
      // The probes below ask every 100 ms from one address: rate limiting would answer them with KoD.
      'ntp: { localStratum: 10, rateLimit: { enabled: false } }',
    );
  }
  return lines.join('\n') + '\n';
}

interface Probe { name: string; every: number; run: () => Promise<unknown> }
interface GapReport { protocol: string; gapMs: number; ok: number; failed: number }

/** Runs each probe on its period until `stop`; the gap is the longest time between two answers. */
function probeLoop(probes: readonly Probe[]): { stop(): Promise<GapReport[]> } {
  let running = true;
  const results = probes.map((p) => {
    const state = { last: performance.now(), gap: 0, ok: 0, failed: 0 };
    const loop = (async () => {
      while (running) {
        const started = performance.now();
        try {
          await p.run();
          const now = performance.now();
          state.gap = Math.max(state.gap, now - state.last);
          state.last = now;
          state.ok++;
        } catch { state.failed++; }
        const wait = p.every - (performance.now() - started);
        if (wait > 0) await sleep(wait);
      }
    })();
    return { p, state, loop };
  });
  return {
    async stop() {
      running = false;
      await Promise.all(results.map((r) => r.loop));
      // A protocol that has not answered since its last success is still in its gap.
      const end = performance.now();
      return results.map((r) => ({ protocol: r.p.name, gapMs: Math.round(Math.max(r.state.gap, end - r.state.last)), ok: r.state.ok, failed: r.state.failed }));
    },
  };
}

/** Writes each member's log (every run of its daemon) to a new directory; null when no member ever started. */
function keepLogs(members: readonly Member[]): string | null {
  const started = members.filter((m) => m.daemon !== undefined);
  if (started.length === 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-demo-logs-'));
  for (const m of started) writeFileSync(join(dir, `${m.name}.log`), [...(m.pastLogs ?? []), m.daemon!.logs()].join('\n--- restarted ---\n'));
  return dir;
}

/**
 * `p`, or a rejection once `signal` aborts (Ctrl-C). The abort listener goes when `p` settles: kept
 * until the end, the demo's eleventh wait printed Node's MaxListenersExceededWarning mid-step.
 */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('interrupted (Ctrl-C)'));
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Error('interrupted (Ctrl-C)'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

export async function runLabDemo(o: DemoOptions, io: CliIo, signal: AbortSignal): Promise<number> {
  const say = new StepPrinter(io, o.json);
  const problem = await prerequisites(io, o.json);
  if (problem !== null) {
    if (o.json) io.out(JSON.stringify({ ok: false, exitCode: DEMO_EXIT.prerequisites, mode: 'lab', error: problem, steps: [] }, null, 2) + '\n');
    else io.err(`lanctl demo: ${problem}\n`);
    return DEMO_EXIT.prerequisites;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-demo-lab-'));
  let lab: Lab | null = null;
  const members: Member[] = [];
  const acked = new Map<string, string>(); // ip -> who
  const gaps: Record<string, GapReport[]> = {};
  let code: number = DEMO_EXIT.ok;
  let url = '';
  let oldHolder: Member | null = null;
  let daemonView: { node: string; gaps: ProtocolGap[]; ackAudit: AckAuditSummary } | null = null;
  let rejoinAudit: { node: string; ackAudit: AckAuditSummary } | null = null;
  let electionView: { node: string; gaps: ProtocolGap[] } | null = null;
  const abortable = <T>(p: Promise<T>): Promise<T> => raceAbort(p, signal);
  const status = async (m: Member): Promise<{ role: string; leader: string | null; commitIndex: number; appliedIndex: number }> => ((await callDaemon(m.socket, 'GET', '/v1/status', undefined, 2000)).body as { cluster: { role: string; leader: string | null; commitIndex: number; appliedIndex: number } }).cluster;
  const holder = async (): Promise<Member | null> => {
    for (const m of members.filter((x) => x.role === 'server' && x.daemon !== undefined && x.daemon.child.exitCode === null && x.daemon.child.signalCode === null)) {
      const r = await callDaemon(m.socket, 'GET', '/v1/vip', undefined, 2000).catch(() => null);
      if ((r?.body as { held?: boolean } | undefined)?.held === true) return m;
    }
    return null;
  };
  const leaderNow = async (): Promise<Member | null> => {
    for (const m of members.filter((x) => x.role === 'server')) if ((await status(m).catch(() => null))?.role === 'leader') return m;
    return null;
  };
  const leasesLost = async (on: Member): Promise<number> => {
    const r = await callDaemon(on.socket, 'GET', '/v1/leases', undefined, 5000);
    const bound = new Set(((r.body as { leases: Array<{ ip: string; state: string }> }).leases).filter((l) => l.state === 'bound').map((l) => l.ip));
    return [...acked.keys()].filter((ip) => !bound.has(ip)).length;
  };
  let probeMac = 0x100;
  const probes: Probe[] = [
    { name: 'dns', every: 25, run: async () => { const r = await dnsQuery(VIP, 53, 'ns1.demo.lan', 1, 300); if (r.rcode !== 'NOERROR') throw new Error(r.rcode); } },
    { name: 'ntp', every: 100, run: async () => { const r = await ntpQuery(VIP, 123, 300); if (r.leap === 3) throw new Error('unsynchronised'); } },
    { name: 'tftp', every: 200, run: () => tftpGet(VIP, 69, 'hello.txt', 500) },
    { name: 'dhcp', every: 250, run: async () => {
      const mac = `52:54:00:de:${((probeMac >> 8) & 0xff).toString(16).padStart(2, '0')}:${(probeMac++ & 0xff).toString(16).padStart(2, '0')}`;
      const r = await dhcpProbe({ server: VIP, port: 67, relay: ROOT_ADDRESS, mac, timeoutMs: 800 });
      acked.set(r.acked, mac);
    } },
  ];

  try {
    say.note(`lanha demo: a rack in network namespaces (${PREFIX}*): lan-a, lan-b, a witness, two DHCP clients; VIP ${VIP}.`);
    await say.run('build the lab: namespaces, a switch, a link from this machine', async () => {
      lab = await Lab.create(PREFIX);
      const link = await lab.addRootLink(`${ROOT_ADDRESS}/24`);
      return { value: null, detail: `lab ${lab.prefix}${lab.id}, this machine is ${ROOT_ADDRESS} on ${link}` };
    });
    const theLab = lab!;
    const keyFile = join(dir, 'cluster.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    mkdirSync(join(dir, 'tftp'));
    writeFileSync(join(dir, 'tftp', 'hello.txt'), 'hello from lanha tftp\n');
    const hosts = [
      { name: 'lan-a', role: 'server' as const, host: await theLab.addHost('a', `${NET}.2/24`) },
      { name: 'lan-b', role: 'server' as const, host: await theLab.addHost('b', `${NET}.3/24`) },
      { name: 'witness', role: 'witness' as const, host: await theLab.addHost('w', `${NET}.9/24`) },
    ];
    for (const h of hosts) {
      const config = join(dir, `${h.name}.yaml`);
      writeFileSync(config, memberConfig(dir, keyFile, h, hosts));
      members.push({ ...h, config, socket: join(dir, `${h.name}.sock`) });
    }
    const start = async (m: Member): Promise<void> => {
      if (m.daemon !== undefined) (m.pastLogs ??= []).push(m.daemon.logs());
      m.daemon = await serveDaemon(m.config, { command: ['ip', 'netns', 'exec', m.host.ns, process.execPath, LANCTL], timeoutMs: 60_000 });
      theLab.track(m.daemon.child);
    };
    const first = await say.run('start lan-a, lan-b and the witness; wait for a leader holding the VIP', async () => {
      const t0 = performance.now();
      await abortable(Promise.all(members.map(start)));
      const h = await abortable(waitFor('a VIP holder', 30_000, holder));
      return { value: h, detail: `${h.name} leads and holds ${VIP} (${Math.round(performance.now() - t0)} ms after start)` };
    });
    url = `http://${first.host.address}:7480/`;
    const clients = [await theLab.addHost('c1', null), await theLab.addHost('c2', null)];
    const leaseOf = async (c: LabHost, name: string): Promise<string> => {
      const script = join(dir, `${name}.sh`);
      writeFileSync(script, `#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"; echo "$new_ip_address" > ${dir}/${name}.ip;; esac\nexit 0\n`);
      chmodSync(script, 0o755);
      writeFileSync(join(dir, `${name}.conf`), `send host-name "${name}";\nrequest subnet-mask, routers, domain-name, domain-name-servers, ntp-servers;\n`);
      c.spawn('dhclient', ['-d', '-v', '-sf', script, '-lf', join(dir, `${name}.leases`), '-pf', join(dir, `${name}.pid`), '-cf', join(dir, `${name}.conf`), c.ifname]);
      return abortable(waitFor(`a lease for ${name}`, 30_000, async () => (existsSync(join(dir, `${name}.ip`)) ? readFileSync(join(dir, `${name}.ip`), 'utf8').trim() : null)));
    };
    const ip1 = await say.run('dhclient in client 1 leases an address (ISC dhclient, host name demo-c1)', async () => {
      const ip = await leaseOf(clients[0]!, 'demo-c1');
      acked.set(ip, 'demo-c1');
      return { value: ip, detail: ip };
    });
    await say.run('dhclient in client 2 leases an address', async () => {
      const ip = await leaseOf(clients[1]!, 'demo-c2');
      acked.set(ip, 'demo-c2');
      return { value: ip, detail: ip };
    });
    await say.run('dig from client 2: demo-c1.demo.lan and its PTR, on the VIP and on both nodes', async () => {
      const answers: string[] = [];
      // +short prints ";; ..." lines for retries on a loaded machine: the answer is the last other line.
      const dig = async (server: string, name: string, type: string): Promise<string> =>
        (await clients[1]!.exec('dig', ['+short', '+time=2', '+tries=3', `@${server}`, name, type])).stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith(';')).at(-1)?.trim() ?? '';
      for (const server of [VIP, `${NET}.2`, `${NET}.3`]) {
        // Three rounds, as for TFTP and NTP below: on a loaded machine a leader's stall past its lease
        // moves the VIP away for a moment, and dig's own tries can all fall in it.
        await retry(3, async () => {
          const a = await dig(server, 'demo-c1.demo.lan', 'A');
          const ptr = await dig(server, reverseName(parseIpv4(ip1)!), 'PTR');
          if (a !== ip1 || ptr !== 'demo-c1.demo.lan.') throw new Error(`@${server}: A "${a}", PTR "${ptr}"`);
        });
        answers.push(server);
      }
      return { value: null, detail: `A ${ip1}, PTR demo-c1.demo.lan. from ${answers.join(', ')}` };
    });
    await say.run('TFTP and NTP answer on the VIP', async () => {
      // Three tries each, as the firmware and OS clients do: one lost datagram on a busy machine is not a failure.
      const data = await retry(3, () => tftpGet(VIP, 69, 'hello.txt'));
      const ntp = await retry(3, () => ntpQuery(VIP, 123));
      return { value: null, detail: `tftp ${data.length} bytes; ntp stratum ${ntp.stratum}, offset ${ntp.offsetMs} ms` };
    });
    const measure = async (label: string, act: () => Promise<string>, want: (h: Member) => boolean): Promise<{ next: Member; line: string }> => {
      const loop = probeLoop(probes);
      await sleep(500);
      let note = '';
      let next: Member;
      try {
        note = await act();
        next = await abortable(waitFor('a new VIP holder', 30_000, async () => { const h = await holder(); return h !== null && want(h) ? h : null; }));
        await sleep(2000); // let every probe answer again
      } finally {
        gaps[label] = await loop.stop();
      }
      const report = gaps[label]!;
      const lost = await leasesLost(next);
      const line = report.map((g) => `${g.protocol} ${g.gapMs} ms`).join(', ');
      if (lost !== 0) throw new Error(`ACKed leases lost: ${lost} (gaps ${line})`);
      return { next, line: `gap per protocol: ${line}${note === '' ? '' : `; ${note}`}; ACKed leases lost: 0 of ${acked.size}` };
    };
    const afterFailover = await say.run('lanctl failover under probes (DNS, NTP, TFTP, DHCP to the VIP)', async () => {
      let from = (await holder())!;
      const { next, line } = await measure('failover', async () => {
        for (let attempt = 1; ; attempt++) {
          const r = await sh(process.execPath, [LANCTL, 'failover', '--json', '--socket', from.socket], 30_000);
          if (r.code === 0) {
            const result = JSON.parse(r.stdout) as { gapMs: number | null; elected?: true; leader: string };
            return result.elected === true ? `an election moved leadership to ${result.leader} while lanctl failover drained` : `lanctl failover measured ${result.gapMs} ms`;
          }
          // Leadership can move on its own between reading the holder and running the command, or
          // while the command drains (a loaded machine delays heartbeats): lanctl then names the leader
          // or says nothing was handed over (no LAN-service node led yet), so fail over from the leader there is now (the VIP may
          // still be on its way to it, so ask the members, not the VIP).
          if (attempt >= 3 || !/not the leader|lost leadership during/.test(r.stderr)) throw new Error(`lanctl failover: ${r.stderr.trim()}`);
          const now = await abortable(waitFor('a leader', 10_000, leaderNow));
          from = now;
        }
      }, (h) => h !== from);
      oldHolder = from;
      return { value: next, detail: `${from.name} -> ${next.name}; ${line}` };
    });
    const old = oldHolder!;
    await say.run(`what ${old.name} measured itself: its probes of the VIP during the failover, the audit of the leases it ACKed`, async () => {
      const audit = await abortable(waitFor(`${old.name}'s ACK audit`, 15_000, async () => {
        const s = (await callDaemon(old.socket, 'GET', '/v1/status', undefined, 2000)).body as { ackAudit?: AckAuditSummary };
        return s.ackAudit?.lastAudit ? s.ackAudit : null;
      }));
      const events = (await callDaemon(old.socket, 'GET', '/v1/events', undefined, 2000)).body as { gaps: ProtocolGap[] };
      const probed = events.gaps.filter((g) => g.trigger === 'transfer' && g.method === 'probe' && g.protocol !== 'vip');
      daemonView = { node: old.name, gaps: events.gaps.filter((g) => g.trigger === 'transfer'), ackAudit: audit };
      if (audit.lostTotal !== 0) throw new Error(describeAckAudit(audit));
      if (probed.length !== 3) throw new Error(`${old.name} probed ${probed.map((g) => g.protocol).join(', ') || 'nothing'} on the VIP; expected dns, ntp and tftp`);
      return { value: null, detail: `probed from ${old.name}: ${probed.map((g) => `${g.protocol} ${Math.round(g.seconds * 1000)} ms`).join(', ')}; ${describeAckAudit(audit)}` };
    });
    const killed = afterFailover;
    const afterKill = await say.run(`kill -9 the leader (${killed.name}) under probes`, async () => {
      const { next, line } = await measure('kill9', async () => { killed.daemon!.child.kill('SIGKILL'); return ''; }, (h) => h !== killed);
      // The survivor probed the VIP from the moment it stopped following the dead leader.
      const gaps = await abortable(waitFor(`${next.name}'s probed election gaps`, 10_000, async () => {
        const g = ((await callDaemon(next.socket, 'GET', '/v1/events', undefined, 2000)).body as { gaps: ProtocolGap[] }).gaps.filter((x) => x.trigger === 'election');
        return g.some((x) => x.method === 'probe') ? g : null;
      }).catch(() => [] as ProtocolGap[]));
      electionView = { node: next.name, gaps };
      const probed = gaps.filter((g) => g.method === 'probe' && g.protocol !== 'vip');
      return { value: next, detail: `${next.name} took over; ${line}${probed.length === 0 ? '' : `; probed from ${next.name} (its own VIP, local path): ${probed.map((g) => `${g.protocol} ${Math.round(g.seconds * 1000)} ms`).join(', ')}`}` };
    });
    await say.run(`${killed.name} rejoins and catches up`, async () => {
      const t0 = performance.now();
      await abortable(start(killed));
      const target = (await status(afterKill)).commitIndex;
      const s = await abortable(waitFor(`${killed.name} to catch up`, 30_000, async () => { const x = await status(killed); return x.appliedIndex >= target ? x : null; }));
      // Its ACK journal survived the kill: it checks what it ACKed before it died against the new leader's log.
      const audit = await abortable(waitFor(`${killed.name}'s ACK audit`, 15_000, async () => {
        const a = ((await callDaemon(killed.socket, 'GET', '/v1/status', undefined, 2000)).body as { ackAudit?: AckAuditSummary }).ackAudit;
        return a?.lastAudit ? a : null;
      }));
      rejoinAudit = { node: killed.name, ackAudit: audit };
      if (audit.lostTotal !== 0) throw new Error(describeAckAudit(audit));
      return { value: null, detail: `${s.role}, applied index ${s.appliedIndex} >= ${target} after ${Math.round(performance.now() - t0)} ms; ${describeAckAudit(audit)}` };
    });
    await say.run('doctor on the leader', async () => {
      // Right after a rejoin the cluster may still move: a loaded machine can stall a leader past its
      // lease (the guard then drops the VIP until the next heartbeat round) or hold an election. Doctor
      // must come back clean on whichever member leads within SETTLE_MS; what it saw until then is said.
      const SETTLE_MS = 15_000;
      const t0 = performance.now();
      const seen = new Map<string, string>();
      let last: Array<{ id: string; severity: string; evidence: string }> = [];
      let on = afterKill;
      for (;;) {
        on = (await leaderNow()) ?? on;
        const r = await callDaemon(on.socket, 'GET', '/v1/doctor', undefined, 5000).catch((e: unknown) => ({ body: { findings: [{ id: 'doctor.unreachable', severity: 'error', evidence: errorMessage(e) }] } }));
        last = (r.body as { findings: Array<{ id: string; severity: string; evidence: string }> }).findings;
        const errors = last.filter((f) => f.severity === 'error');
        if (errors.length === 0) break;
        for (const f of errors) if (!seen.has(f.id)) seen.set(f.id, `${on.name}: ${f.evidence}`);
        if (performance.now() - t0 > SETTLE_MS) throw new Error(`error findings after ${SETTLE_MS} ms: ${errors.map((f) => `${f.id} (${f.evidence})`).join('; ')}`);
        await sleep(250);
      }
      const settled = seen.size === 0 ? '' : `; clean after ${Math.round(performance.now() - t0)} ms, before that: ${[...seen].map(([id, e]) => `${id} (${e})`).join('; ')}`;
      return { value: null, detail: `${on.name}: ${last.length === 0 ? 'no findings' : last.map((f) => `${f.severity} ${f.id}`).join(', ')}${settled}` };
    });
    url = `http://${afterKill.host.address}:7480/`;
  } catch (error) {
    if (!say.steps.some((s) => !s.ok)) say.steps.push({ step: 'demo', ok: false, ms: 0, detail: errorMessage(error) });
    if (!o.json && !signal.aborted) io.err(`lanctl demo: ${errorMessage(error)}\n`);
    code = DEMO_EXIT.checkFailed;
  }
  const passed = say.steps.filter((s) => s.ok).length;
  // A failed check keeps every member's log (each run of its daemon, in order) for the operator.
  const logs = code === 0 ? null : keepLogs(members);
  if (o.json) io.out(JSON.stringify({ ok: code === 0, exitCode: signal.aborted ? DEMO_EXIT.interrupted : code, mode: 'lab', url, gaps, ackedLeases: acked.size, daemonView, electionView, rejoinAudit, logs, steps: say.steps }, null, 2) + '\n');
  else if (!signal.aborted) {
    say.note(code === 0
      ? `\nall ${passed} checks passed. Status pages (from this machine): ${url}  (each node serves its own on :7480; /metrics too)`
      : `\n${say.steps.length - passed} check(s) failed.${logs === null ? '' : ` The members' logs are kept in ${logs}.`}`);
  }
  if (code === 0 && !o.once && !signal.aborted) {
    say.note('running until Ctrl-C ...');
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  try {
    await (lab as Lab | null)?.destroy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return signal.aborted ? DEMO_EXIT.interrupted : code;
}
