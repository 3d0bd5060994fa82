// bench:tftp helper: one storm of N concurrent curl downloads (blksize 1468) from a TFTP server on
// 127.0.0.1, and where its time goes: whether the machine is saturated (/proc/stat idle, how many
// of the storm's tasks are runnable), each server thread's (or forked child's) CPU and run-queue
// wait (/proc/<pid>/task/<tid>/schedstat), its user/system split and context switches per block,
// the clients' CPU and wait, every transfer's progress over time (the output files' sizes: who
// finished early, who straggled, the longest stall) and, given lanha's control socket, the
// retransmissions and how the transfers were spread over the workers. Not a test; Linux only.
//   node dist/bench/tftp-storm.js PORT FILE SERVER_PID [CLIENTS=20] [CONTROL_SOCKET] [LABEL]
// FILE is the served file's path (its name is requested, its size and bytes are checked).
// Prints one JSON line; the probe polls every POLL_MS (20) and its own CPU is printed too.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const [portText = '69', file = '', pidText = '0', clientsText = '20', socketPath = '', label = 'storm'] = process.argv.slice(2);
const clientCount = Number(clientsText);
const serverPid = Number(pidText);
const pollMs = Number(process.env.POLL_MS ?? '20');
const BLKSIZE = 1468;
const size = statSync(file).size;
const want = readFileSync(file);
const dir = mkdtempSync(join(tmpdir(), 'tftp-storm-'));

interface Sched { runNs: number; waitNs: number; userTicks: number; systemTicks: number; voluntary: number; involuntary: number }
interface Client { pid: number; out: string; samples: Array<[number, number]>; doneMs: number | null; code: number | null; runNs: number; waitNs: number; settled: boolean }

function text(path: string): string | null {
  try { return readFileSync(path, 'latin1'); } catch { return null; }
}

/** A task's schedstat (run and run-queue wait, ns), utime/stime and context switches, or null once it is gone. */
function sched(taskDir: string): Sched | null {
  const s = text(`${taskDir}/schedstat`);
  const stat = text(`${taskDir}/stat`);
  const status = text(`${taskDir}/status`);
  if (s === null || stat === null || status === null) return null;
  const [runNs = 0, waitNs = 0] = s.trim().split(' ').map(Number);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const count = (name: string): number => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return {
    runNs, waitNs, userTicks: Number(fields[11]), systemTicks: Number(fields[12]),
    voluntary: count('voluntary_ctxt_switches'), involuntary: count('nonvoluntary_ctxt_switches'),
  };
}

/** Every thread of the server and of the children it forks (tftpd-hpa serves each transfer in one). */
function serverTasks(pid: number, into = new Map<string, Sched>()): Map<string, Sched> {
  let tids: string[];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { return into; }
  for (const tid of tids) {
    const task = `/proc/${pid}/task/${tid}`;
    const s = sched(task);
    if (s !== null) into.set(task, s);
    for (const child of (text(`${task}/children`) ?? '').trim().split(/\s+/)) if (child !== '') serverTasks(Number(child), into);
  }
  return into;
}

function running(taskDir: string): boolean {
  const stat = text(`${taskDir}/stat`);
  return stat !== null && stat[stat.lastIndexOf(')') + 2] === 'R';
}

function cpuTicks(): { idle: number; total: number } {
  const fields = (text('/proc/stat') ?? '').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total: fields.reduce((a, b) => a + b, 0) };
}

function status(): { counters?: Record<string, number>; transfers?: Array<{ client: string; worker?: number }> } {
  if (socketPath === '') return {};
  try { return JSON.parse(execFileSync('curl', ['-s', '--unix-socket', socketPath, 'http://lanha/v1/tftp'], { encoding: 'utf8' })); } catch { return {}; }
}

/** Which worker serves each curl (by the curl's local port, from `ss`). */
function workersByPid(): Map<number, number> {
  const byPort = new Map<number, number>();
  for (const t of status().transfers ?? []) if (t.worker !== undefined) byPort.set(Number(t.client.split(':').pop()), t.worker);
  const out = new Map<number, number>();
  try {
    for (const line of execFileSync('ss', ['-uanp'], { encoding: 'utf8' }).split('\n')) {
      const m = line.match(/:(\d+)\s+\S+\s+users:\(\("curl",pid=(\d+)/);
      const worker = m === null ? undefined : byPort.get(Number(m[1]));
      if (worker !== undefined) out.set(Number(m![2]), worker);
    }
  } catch { /* no ss: no spread */ }
  return out;
}

const counters0 = status().counters ?? {};
const first = serverTasks(serverPid);
const last = new Map(first);
const cpu0 = cpuTicks();
const self0 = process.cpuUsage();
const t0 = performance.now();
const clients: Client[] = [];
for (let k = 0; k < clientCount; k++) {
  const out = join(dir, String(k));
  const child = spawn('curl', ['-sf', '--tftp-blksize', String(BLKSIZE), '-o', out, `tftp://127.0.0.1:${portText}/${basename(file)}`], { stdio: 'ignore' });
  const client: Client = { pid: child.pid ?? -1, out, samples: [], doneMs: null, code: null, runNs: 0, waitNs: 0, settled: false };
  child.on('exit', (code) => { client.doneMs = performance.now() - t0; client.code = code; });
  clients.push(client);
}
/** Polls, while every client still runs, with 0, 1 and 2 or more of the storm's tasks runnable. */
const runnable = [0, 0, 0];
let workers: Map<number, number> | null = null;

const timer = setInterval(() => {
  const now = performance.now() - t0;
  for (const c of clients) {
    if (c.settled) continue;
    let bytes = 0;
    try { bytes = statSync(c.out).size; } catch { /* not created yet */ }
    c.samples.push([now, bytes]);
    if (c.doneMs !== null) c.settled = true;
    else {
      const s = text(`/proc/${c.pid}/schedstat`);
      if (s !== null) [c.runNs = c.runNs, c.waitNs = c.waitNs] = s.trim().split(' ').map(Number);
    }
  }
  serverTasks(serverPid, last);
  if (clients.every((c) => c.doneMs === null)) {
    let n = 0;
    for (const c of clients) if (running(`/proc/${c.pid}`)) n++;
    for (const task of last.keys()) if (running(task)) n++;
    runnable[Math.min(2, n)]!++;
  }
  if (workers === null && now > 300 && socketPath !== '') workers = workersByPid();
  if (clients.every((c) => c.settled)) finish();
}, pollMs);

function finish(): void {
  clearInterval(timer);
  const wallMs = performance.now() - t0;
  const cpu1 = cpuTicks();
  const self = process.cpuUsage(self0);
  const counters1 = status().counters ?? {};
  const blocks = clientCount * (Math.floor(size / BLKSIZE) + 1);
  const ok = clients.filter((c) => c.code === 0 && readFileSync(c.out).equals(want)).length;
  const sum = { runNs: 0, waitNs: 0, userTicks: 0, systemTicks: 0, voluntary: 0, involuntary: 0 };
  for (const [task, s] of last) {
    const f = first.get(task);
    for (const k of Object.keys(sum) as Array<keyof Sched>) sum[k] += s[k] - (f?.[k] ?? 0);
  }
  let clientRunNs = 0;
  let clientWaitNs = 0;
  for (const c of clients) { clientRunNs += c.runNs; clientWaitNs += c.waitNs; }
  const doneAt = clients.map((c) => c.doneMs ?? wallMs).sort((a, b) => a - b);
  /** Fraction of the file a client had at `ms`. */
  const progress = (c: Client, ms: number): number => {
    let bytes = 0;
    for (const [t, b] of c.samples) { if (t > ms) break; bytes = b; }
    return bytes / size;
  };
  const spread = (at: number): string => {
    const p = clients.map((c) => progress(c, wallMs * at)).sort((a, b) => a - b);
    return `${p[0]!.toFixed(2)}-${p[p.length - 1]!.toFixed(2)}`;
  };
  let stallMs = 0;
  for (const c of clients) {
    for (let i = 1; i < c.samples.length; i++) {
      let j = i;
      while (j < c.samples.length && c.samples[j]![1] === c.samples[i - 1]![1] && c.samples[j]![1] < size) j++;
      if (j > i) stallMs = Math.max(stallMs, c.samples[Math.min(j, c.samples.length - 1)]![0] - c.samples[i - 1]![0]);
      i = j;
    }
  }
  const firstDone = doneAt[0]!;
  let tailBytes = 0;
  for (const c of clients) tailBytes += size - progress(c, firstDone) * size;
  const perWorker = new Map<number, number[]>();
  for (const c of clients) {
    const w = workers?.get(c.pid);
    if (w !== undefined) perWorker.set(w, [...(perWorker.get(w) ?? []), (c.doneMs ?? wallMs) / 1000]);
  }
  const mib = (bytes: number, ms: number): number => +(bytes / 1048576 / (ms / 1000)).toFixed(1);
  const perBlock = (ns: number): number => +(ns / 1000 / blocks).toFixed(1);
  console.log(JSON.stringify({
    label, ok, clients: clientCount, wall_s: +(wallMs / 1000).toFixed(2), mib_s: mib(ok * size, wallMs),
    first_done_s: +(firstDone / 1000).toFixed(2), median_done_s: +(doneAt[doneAt.length >> 1]! / 1000).toFixed(2),
    body_mib_s: mib(clientCount * size - tailBytes, firstDone), tail_mib_s: mib(tailBytes, wallMs - firstDone),
    progress_at_50pct: spread(0.5), longest_stall_ms: Math.round(stallMs),
    idle_pct: +(100 * (cpu1.idle - cpu0.idle) / Math.max(1, cpu1.total - cpu0.total)).toFixed(1),
    runnable_0_1_2plus: runnable.join('/'),
    server_cpu_us_per_block: perBlock(sum.runNs), server_wait_us_per_block: perBlock(sum.waitNs),
    server_user_pct: Math.round(100 * sum.userTicks / Math.max(1, sum.userTicks + sum.systemTicks)),
    server_preemptions_per_block: +(sum.involuntary / blocks).toFixed(2), server_sleeps_per_block: +(sum.voluntary / blocks).toFixed(2),
    client_cpu_us_per_block: perBlock(clientRunNs), client_wait_us_per_block: perBlock(clientWaitNs),
    probe_cpu_ms: Math.round((self.user + self.system) / 1000),
    retransmits: (counters1['tftp.retransmits'] ?? 0) - (counters0['tftp.retransmits'] ?? 0),
    workers: [...perWorker].sort((a, b) => a[0] - b[0]).map(([w, d]) => `w${w}: ${d.length} done by ${Math.max(...d).toFixed(2)} s`).join(', '),
  }));
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
