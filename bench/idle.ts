// npm run bench:idle -- what an idle lanha costs: CPU time and wake-ups per second of each process
// (the daemon, its DNS UDP workers, the VIP guard), with nothing asking it anything. On a Raspberry
// Pi that is power and scheduling jitter for nothing. Not a test.
//
// Started here, all at once, then left alone for SETTLE seconds and measured over WINDOW seconds:
//   single   examples/single-node.yaml (ports, state and socket moved to a temp dir): one member,
//            DHCP, DNS, TFTP, NTP, boot HTTP, status HTTP
//   cluster  lan-a, lan-b (the same services, and the VIP) and a witness: the leader, a follower
//            and the witness are reported by role
//   stack    what lanha replaces, idle: dnsmasq (DHCP + DNS + TFTP), chronyd (NTP server, local
//            stratum, clock untouched) and keepalived (VRRP master holding an address)
// As root everything runs inside one network namespace made here (lh<rand>i: a veth pair, one end holding
// the node addresses and the VIPs), removed at exit; the anchors are installed by bench/anchors.sh idle.
// Not root: lanha runs on loopback without the VIP, and the stack is NA.
//
// Per process, from /proc/<pid>/task/*: CPU = schedstat run time of every thread (plus the reaped
// children's utime+stime: the `ip` calls of the VIP guard), wake-ups = voluntary context switches of
// every thread (each is one sleep ended by a wake-up). Prints a table, the busiest threads, and
//   RESULT idle.cpu_ms_per_s lanha=<leader node> stack=<dnsmasq+chronyd+keepalived> ratio=.. unit=ms/s better=lower
//   RESULT idle.wakeups_per_s ...                                  (the same for wake-ups)
//   RESULT idle.<single|leader|follower|witness>.<cpu_ms_per_s|wakeups_per_s> ...          (whole node)
//   RESULT idle.<single|leader|follower>.<daemon|dns_worker>.<cpu_ms_per_s|wakeups_per_s> lanha=<v> ...
// Env: SETTLE (10) and WINDOW (30) seconds; THREADS=1 lists every thread above 0.1 ms/s or 0.5 wake-ups/s;
// PROFILE=DIR writes each daemon's --cpu-prof to DIR/<name>.cpuprofile (start to stop, settling included).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { callDaemon } from '../lib/control-client.js';
import { DAEMON_NODE_FLAGS } from '../lib/memory.js';

const SETTLE_S = Number(process.env['SETTLE'] ?? 10);
const WINDOW_S = Number(process.env['WINDOW'] ?? 30);
const REPO = resolve(import.meta.dirname, '..', '..');
const LANHAD = join(REPO, 'dist', 'bin', 'lanhad.js');
const ROOT = process.getuid?.() === 0;
const NS = `lh${randomBytes(2).toString('hex')}i`;
const LINK = `${NS}0`;
const CLK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim() || 100);
const dir = mkdtempSync(join(tmpdir(), 'lanha-bench-idle-'));
const children: ChildProcess[] = [];

// ---- /proc sampling -------------------------------------------------------------------------------

interface TaskSample { cpuNs: number; wakeups: number }
interface ProcSample { pid: number; cmd: string; tasks: Map<number, TaskSample>; reapedMs: number }

const read = (path: string): string | null => { try { return readFileSync(path, 'utf8'); } catch { return null; } };

/** `pid` and every process below it. */
function tree(pid: number): number[] {
  const out = [pid];
  let tids: string[];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { return out; } // ended meanwhile (an `ip` call of the guard)
  for (const tid of tids) {
    for (const c of (read(`/proc/${pid}/task/${tid}/children`) ?? '').trim().split(/\s+/)) if (c !== '') out.push(...tree(Number(c)));
  }
  return out;
}

function sampleProcess(pid: number): ProcSample | null {
  const stat = read(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tasks = new Map<number, TaskSample>();
  let tids: string[];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { return null; }
  for (const tid of tids) {
    const sched = read(`/proc/${pid}/task/${tid}/schedstat`), status = read(`/proc/${pid}/task/${tid}/status`);
    if (sched === null || status === null) continue;
    tasks.set(Number(tid), { cpuNs: Number(sched.split(' ')[0]), wakeups: Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0) });
  }
  const cmd = (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter((s) => s !== '').join(' ');
  return { pid, cmd, tasks, reapedMs: (Number(f[13]) + Number(f[14])) * CLK_MS };
}

interface ProcFigure { pid: number; role: string; cpuMsPerS: number; wakeupsPerS: number; threads: Array<{ tid: number; cpuMsPerS: number; wakeupsPerS: number }> }

function roleOf(cmd: string, isRoot: boolean, rootRole: string): string {
  if (isRoot) return rootRole;
  if (cmd.includes('udp-worker.js')) return 'dns worker';
  if (cmd.startsWith('bash') || cmd.startsWith('/bin/bash') || cmd.startsWith('/usr/bin/bash')) return 'vip guard';
  return cmd.split(' ')[0]!.split('/').pop()!;
}

/** CPU ms and wake-ups per second of every process under each root over `seconds`. */
async function measure(roots: ReadonlyArray<{ name: string; pid: number; role: string }>, seconds: number): Promise<Map<string, ProcFigure[]>> {
  const before = new Map<number, ProcSample>();
  for (const r of roots) for (const pid of tree(r.pid)) { const s = sampleProcess(pid); if (s) before.set(pid, s); }
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const dt = (performance.now() - t0) / 1000;
  const out = new Map<string, ProcFigure[]>();
  for (const r of roots) {
    const figures: ProcFigure[] = [];
    for (const pid of tree(r.pid)) {
      const a = before.get(pid), b = sampleProcess(pid);
      if (!a || !b) continue; // started or ended inside the window (an `ip` call): counted in its parent's reaped time
      const threads = [...b.tasks].filter(([tid]) => a.tasks.has(tid)).map(([tid, y]) => {
        const x = a.tasks.get(tid)!;
        return { tid, cpuMsPerS: (y.cpuNs - x.cpuNs) / 1e6 / dt, wakeupsPerS: (y.wakeups - x.wakeups) / dt };
      });
      const reaped = (b.reapedMs - a.reapedMs) / dt;
      figures.push({
        pid, role: roleOf(b.cmd, pid === r.pid, r.role), threads,
        cpuMsPerS: threads.reduce((s, t) => s + t.cpuMsPerS, 0) + reaped, wakeupsPerS: threads.reduce((s, t) => s + t.wakeupsPerS, 0),
      });
    }
    out.set(r.name, figures);
  }
  return out;
}

// ---- what runs ------------------------------------------------------------------------------------

function start(name: string, command: string, args: string[]): ChildProcess {
  const [cmd, argv] = ROOT ? ['ip', ['netns', 'exec', NS, command, ...args]] : [command, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = join(dir, `${name}.log`);
  const keep = (b: Buffer): void => { try { writeFileSync(log, b, { flag: 'a' }); } catch { /* the temp dir is gone: stopping */ } };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.push(child);
  return child;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

const BASE = ROOT ? '10.97.0' : '127.0.0';
const addr = (n: number): string => (ROOT ? `${BASE}.${n}` : '127.0.0.1');

/** A lanha config from examples/single-node.yaml: own ports from `port0`, own state dir; `patch` adds the rest. */
function lanhaConfig(name: string, port0: number, patch: (c: Record<string, any>) => void): string {
  const c = YAML.parse(readFileSync(join(REPO, 'examples', 'single-node.yaml'), 'utf8')) as Record<string, any>;
  c['node'] = { ...c['node'], name, stateDir: join(dir, name, 'state'), controlSocket: join(dir, `${name}.sock`), logLevel: 'warn' };
  c['dhcp'].port = port0; c['dhcp'].clientPort = port0 + 1;
  c['dns'].port = port0 + 2;
  c['tftp'].port = port0 + 3; c['tftp'].root = join(REPO, 'examples', 'tftp-root');
  c['ntp'].port = port0 + 4;
  c['boot'].http.port = port0 + 5;
  c['http'].listen = `127.0.0.1:${port0 + 6}`;
  patch(c);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, YAML.stringify(c));
  return file;
}

function startLanha(name: string, config: string): ChildProcess {
  const profile = process.env['PROFILE'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env['PROFILE'])}`, `--cpu-prof-name=${name}.cpuprofile`];
  return start(name, process.execPath, [...DAEMON_NODE_FLAGS, ...profile, LANHAD, '--config', config]);
}

async function status(name: string): Promise<Record<string, any> | null> {
  try {
    const r = await callDaemon(join(dir, `${name}.sock`), 'GET', '/v1/status', undefined, 2000);
    return r.status === 200 ? r.body as Record<string, any> : null;
  } catch {
    return null;
  }
}

async function until(what: string, ok: () => Promise<boolean>, ms = 60_000): Promise<void> {
  for (const end = performance.now() + ms; performance.now() < end; await new Promise((r) => setTimeout(r, 250))) if (await ok()) return;
  throw new Error(`not ready within ${ms} ms: ${what} (logs in ${dir})`);
}

function stack(): Array<{ name: string; child: ChildProcess }> {
  const d = join(dir, 'stack');
  mkdirSync(join(d, 'tftp'), { recursive: true });
  const dnsmasq = start('dnsmasq', 'dnsmasq', ['-k', '--conf-file=/dev/null', `--pid-file=${d}/dnsmasq.pid`, '--bind-interfaces', '--listen-address=127.0.0.1', `--listen-address=${addr(50)}`,
    `--interface=${LINK}`, `--dhcp-range=${BASE}.100,${BASE}.199,12h`, `--dhcp-leasefile=${d}/leases`, '--enable-tftp', `--tftp-root=${d}/tftp`,
    '--address=/www.demo.lan/127.0.0.80', '--no-resolv', '--no-hosts', '--user=root']);
  writeFileSync(join(d, 'chrony.conf'), `port 123\nallow 127.0.0.1\nlocal stratum 10\ncmdport 0\npidfile ${d}/chronyd.pid\ndriftfile ${d}/chrony.drift\n`);
  const chronyd = start('chronyd', 'chronyd', ['-d', '-x', '-u', 'root', '-f', join(d, 'chrony.conf')]);
  writeFileSync(join(d, 'keepalived.conf'), `global_defs {\n  router_id ${NS}\n}\nvrrp_instance ${NS}_vi {\n  state MASTER\n  interface ${LINK}\n  virtual_router_id 61\n  priority 150\n  advert_int 1\n`
    + `  virtual_ipaddress {\n    ${BASE}.200/24 dev ${LINK}\n  }\n}\n`);
  const keepalived = start('keepalived', 'keepalived', ['-n', '-l', '-D', '-P', '-G', '-f', join(d, 'keepalived.conf'), '-p', join(d, 'k.pid'), '-r', join(d, 'v.pid'), '-c', join(d, 'c.pid')]);
  return [{ name: 'dnsmasq', child: dnsmasq }, { name: 'chronyd', child: chronyd }, { name: 'keepalived', child: keepalived }];
}

// ---- the run --------------------------------------------------------------------------------------

function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) { try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ } }
  const end = Date.now() + 3000;
  while (Date.now() < end && children.some((c) => c.pid !== undefined && existsSync(`/proc/${c.pid}`) && !/^State:\s+Z/m.test(read(`/proc/${c.pid}/status`) ?? 'State: Z'))) spawnSync('sleep', ['0.1']);
  for (const c of children) if (c.pid !== undefined && existsSync(`/proc/${c.pid}`)) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
  if (ROOT) spawnSync('ip', ['netns', 'del', NS]);
  if (process.env['KEEP'] === undefined) rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });
process.on('SIGTERM', () => { cleanup(); process.exit(143); });

const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => n.toFixed(2);
const sum = (xs: readonly ProcFigure[], k: 'cpuMsPerS' | 'wakeupsPerS'): number => xs.reduce((s, x) => s + x[k], 0);
const ratio = (a: number, b: number | null): string => (b === null || b === 0 ? 'NA' : f2(a / b));

async function main(): Promise<void> {
  if (!existsSync(LANHAD)) throw new Error('build first: npm run build');
  console.log(`machine: load average ${loadavg().map(f2).join(' ')} at the start (${new Date().toISOString().slice(11, 19)} UTC); settle ${SETTLE_S} s, window ${WINDOW_S} s`);
  if (ROOT) {
    ip('netns', 'add', NS);
    ip('-n', NS, 'link', 'set', 'lo', 'up');
    ip('-n', NS, 'link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${NS}1`);
    for (const l of [LINK, `${NS}1`]) ip('-n', NS, 'link', 'set', l, 'up');
    for (const n of [2, 3, 9, 50]) ip('-n', NS, 'addr', 'add', `${BASE}.${n}/24`, 'dev', LINK);
  } else {
    console.log('not root: lanha on loopback without the VIP, the stack (dnsmasq, chronyd, keepalived) not measured');
  }
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const raftPort = 21400;
  const members = [{ name: 'lan-a', address: addr(2), port: raftPort }, { name: 'lan-b', address: addr(3), port: raftPort + 1 },
    { name: 'witness', address: addr(9), port: raftPort + 2, role: 'witness' }];
  const cluster = { id: 'idle-bench', keyFile, members };
  const single = lanhaConfig('single', 20000, () => undefined);
  const configs: Record<string, string> = { single };
  for (const [i, m] of members.slice(0, 2).entries()) {
    configs[m.name] = lanhaConfig(m.name, 20010 + 10 * i, (c) => {
      c['node'].address = m.address;
      c['cluster'] = cluster;
      if (ROOT) c['vip'] = { address: `${BASE}.100/24`, interface: LINK, mode: 'fast', lifetimeSeconds: 2 };
    });
  }
  configs['witness'] = join(dir, 'witness.yaml');
  writeFileSync(configs['witness'], YAML.stringify({ node: { name: 'witness', role: 'witness', address: addr(9), stateDir: join(dir, 'witness', 'state'), controlSocket: join(dir, 'witness.sock'), logLevel: 'warn' }, cluster }));
  const daemons = Object.fromEntries(Object.entries(configs).map(([name, file]) => [name, startLanha(name, file)]));
  const anchors = ROOT ? stack() : [];

  await until('single-node leader', async () => (await status('single'))?.['cluster']?.role === 'leader');
  let leader = '', follower = '';
  const settled = async (): Promise<boolean> => {
    const [a, b] = [await status('lan-a'), await status('lan-b')];
    const l = [a, b].find((s) => s?.['cluster']?.role === 'leader');
    if (!l) return false;
    leader = l['node'] as string;
    follower = leader === 'lan-a' ? 'lan-b' : 'lan-a';
    return !ROOT || (l['members'] as Array<{ name: string; vipHeld: boolean | null }>).some((m) => m.name === leader && m.vipHeld === true);
  };
  await until('a cluster leader (holding the VIP as root)', settled);
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  await until('a cluster leader after settling (holding the VIP as root)', settled); // the lead may have moved meanwhile
  const roots = [
    { name: 'single', pid: daemons['single']!.pid!, role: 'daemon' },
    { name: 'leader', pid: daemons[leader]!.pid!, role: 'daemon' },
    { name: 'follower', pid: daemons[follower]!.pid!, role: 'daemon' },
    { name: 'witness', pid: daemons['witness']!.pid!, role: 'daemon' },
    ...anchors.map((a) => ({ name: a.name, pid: a.child.pid!, role: a.name })),
  ];
  for (const r of roots) if (!existsSync(`/proc/${r.pid}`)) throw new Error(`${r.name} (pid ${r.pid}) is not running (logs in ${dir})`);
  const termOf = async (): Promise<number> => Math.max(...await Promise.all(['lan-a', 'lan-b', 'witness'].map(async (n) => Number((await status(n))?.['cluster']?.term ?? 0))));
  const termBefore = await termOf();
  const figures = await measure(roots, WINDOW_S);
  const termAfter = await termOf();
  // A loaded machine (a long pause of a member) can cost the leader its lease: the figures then hold elections and VIP moves.
  console.log(`cluster: term ${termBefore} -> ${termAfter} during the window${termAfter === termBefore ? ' (no election: an idle cluster)' : ' (ELECTIONS during the window: the cluster figures are not idle ones)'}`);

  console.log(`\n${'what'.padEnd(10)} ${'process'.padEnd(12)} ${'pid'.padStart(7)} ${'CPU ms/s'.padStart(9)} ${'wake-ups/s'.padStart(11)}`);
  for (const [name, procs] of figures) {
    for (const p of procs) console.log(`${name.padEnd(10)} ${p.role.padEnd(12)} ${String(p.pid).padStart(7)} ${f2(p.cpuMsPerS).padStart(9)} ${f1(p.wakeupsPerS).padStart(11)}`);
    if (procs.length > 1) console.log(`${name.padEnd(10)} ${'(all)'.padEnd(12)} ${''.padStart(7)} ${f2(sum(procs, 'cpuMsPerS')).padStart(9)} ${f1(sum(procs, 'wakeupsPerS')).padStart(11)}`);
  }
  if (process.env['THREADS'] === '1') {
    console.log('\nthreads (above 0.1 ms/s or 0.5 wake-ups/s):');
    for (const [name, procs] of figures) for (const p of procs) for (const t of p.threads) {
      if (t.cpuMsPerS > 0.1 || t.wakeupsPerS > 0.5) console.log(`  ${name} ${p.role} tid ${t.tid}: ${f2(t.cpuMsPerS)} ms/s, ${f1(t.wakeupsPerS)} wake-ups/s${t.tid === p.pid ? ' (main thread)' : ''}`);
    }
  }
  const stackOf = (names: readonly string[]): { cpu: number; wake: number } | null => {
    if (!ROOT) return null;
    const procs = names.flatMap((n) => figures.get(n) ?? []);
    return { cpu: sum(procs, 'cpuMsPerS'), wake: sum(procs, 'wakeupsPerS') };
  };
  const full = stackOf(['dnsmasq', 'chronyd', 'keepalived']);
  const noVip = stackOf(['dnsmasq', 'chronyd']);
  console.log(`\nstack = dnsmasq + chronyd${ROOT ? ' + keepalived (single: dnsmasq + chronyd, no VIP there)' : ': NA (not root)'}; load average ${loadavg().map(f2).join(' ')} at the end`);
  const line = (figure: string, v: number, anchor: number | null | undefined, unit: string): void => {
    console.log(anchor === undefined ? `RESULT ${figure} lanha=${f2(v)} unit=${unit} better=lower`
      : `RESULT ${figure} lanha=${f2(v)} stack=${anchor === null ? 'NA' : f2(anchor)} ratio=${ratio(v, anchor)} unit=${unit} better=lower`);
  };
  const lead = figures.get('leader')!;
  line('idle.cpu_ms_per_s', sum(lead, 'cpuMsPerS'), full?.cpu ?? null, 'ms/s');
  line('idle.wakeups_per_s', sum(lead, 'wakeupsPerS'), full?.wake ?? null, 'wakeups/s');
  for (const name of ['single', 'leader', 'follower', 'witness']) {
    const procs = figures.get(name)!;
    const anchor = name === 'single' ? noVip : name === 'witness' ? undefined : full;
    line(`idle.${name}.cpu_ms_per_s`, sum(procs, 'cpuMsPerS'), anchor === undefined ? undefined : anchor?.cpu ?? null, 'ms/s');
    line(`idle.${name}.wakeups_per_s`, sum(procs, 'wakeupsPerS'), anchor === undefined ? undefined : anchor?.wake ?? null, 'wakeups/s');
    if (name === 'witness') continue;
    for (const role of ['daemon', 'dns worker']) {
      const ps = procs.filter((p) => p.role === role);
      if (ps.length === 0) continue;
      const key = role === 'daemon' ? 'daemon' : 'dns_worker';
      line(`idle.${name}.${key}.cpu_ms_per_s`, sum(ps, 'cpuMsPerS'), undefined, 'ms/s');
      line(`idle.${name}.${key}.wakeups_per_s`, sum(ps, 'wakeupsPerS'), undefined, 'wakeups/s');
    }
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench:idle: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
