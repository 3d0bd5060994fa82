// bench:tftp helper: CPU time a server process spends, with every thread and every child process
// it forks, from /proc/<pid>/task/<tid>/schedstat (nanoseconds on CPU). tftpd-hpa serves each
// transfer in a forked child it does not wait for, so its CPU never shows in its own /proc stat;
// this polls the process tree every POLL_MS and keeps each task's last figure. A task's CPU after
// its last poll is lost (tftpd-hpa ignores SIGCHLD, so its children are gone at once): the figure
// errs low, never high, and more so when the machine is so busy that polls come late. Each poll
// re-reads files it holds open (one pread per task), about 1-3 % of a core here; bench:tftp polls
// every server alike. With POLL_MS 0 the tree is read only at the start and at the end (for
// servers whose threads live on). Not a test; Linux only.
//   node dist/bench/tftp-cpu.js PID [POLL_MS]   -> on SIGTERM or SIGINT prints `CPU <ns>` and exits
// The figure is the CPU spent between the start of this helper (`CPU ready`) and the signal.
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';

const root = Number(process.argv[2]);
const pollMs = Number(process.argv[3] ?? '0');
const TREE_MAX = 10_000;
const scratch = Buffer.alloc(4096);

/** A task's schedstat, held open; CPU ns when first seen (0 if born after the start) and last read. */
interface Task { fd: number; first: number; last: number }
const tasks = new Map<string, Task>();
/** The `children` file of each thread of a process in the tree, held open. */
const childLists = new Map<string, number>();
let started = false;
/** CPU of tasks whose id came back for a new task (a reused pid). */
let retiredNs = 0;

/** Re-reads an open /proc file from its start; null once its task is gone. */
function pread(fd: number): string | null {
  try {
    const n = readSync(fd, scratch, 0, scratch.length, 0);
    return scratch.toString('latin1', 0, n);
  } catch {
    return null;
  }
}

function openOrNull(path: string): number | null {
  try { return openSync(path, 'r'); } catch { return null; }
}

/** Opens what is new in one process: its threads' schedstat and children files. */
function adopt(pid: number): void {
  let tids: string[];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { return; }
  for (const tid of tids) {
    const key = `${pid}/${tid}`;
    const old = tasks.get(key);
    if (old !== undefined && old.fd < 0) {
      retiredNs += old.last - old.first;
      tasks.delete(key);
    }
    if (!tasks.has(key)) {
      const fd = openOrNull(`/proc/${pid}/task/${tid}/schedstat`);
      if (fd !== null) {
        const ns = Number((pread(fd) ?? '').split(' ')[0]);
        if (Number.isFinite(ns)) tasks.set(key, { fd, first: started ? 0 : ns, last: ns });
        else closeSync(fd);
      }
    }
    if (!childLists.has(key)) {
      const fd = openOrNull(`/proc/${pid}/task/${tid}/children`);
      if (fd !== null) childLists.set(key, fd);
    }
  }
}

/** Reads every open task, then adopts processes that appeared (whole tree when `rescan`). */
function poll(rescan: boolean): void {
  for (const task of tasks.values()) {
    if (task.fd < 0) continue;
    const text = pread(task.fd);
    const ns = text === null ? NaN : Number(text.split(' ')[0]);
    if (Number.isFinite(ns)) task.last = ns;
    else { closeSync(task.fd); task.fd = -1; }
  }
  if (rescan) adopt(root);
  const known = new Set<number>();
  for (const [key, task] of tasks) if (task.fd >= 0) known.add(Number(key.split('/')[0]));
  const stack: number[] = [];
  for (const [key, fd] of childLists) {
    const text = pread(fd);
    if (text === null) { closeSync(fd); childLists.delete(key); continue; }
    for (const c of text.split(' ')) if (c.trim() !== '') stack.push(Number(c));
  }
  for (let seen = 0; stack.length > 0 && seen < TREE_MAX; seen++) {
    const pid = stack.pop()!;
    if (known.has(pid) && !rescan) continue;
    known.add(pid);
    adopt(pid);
    // A new child's own children (rare: tftpd-hpa's do not fork).
    for (const [key, fd] of childLists) {
      if (!key.startsWith(`${pid}/`)) continue;
      for (const c of (pread(fd) ?? '').split(' ')) if (c.trim() !== '' && !known.has(Number(c))) stack.push(Number(c));
    }
  }
  started = true;
}

function finish(): void {
  poll(true);
  let total = retiredNs;
  for (const t of tasks.values()) total += t.last - t.first;
  console.log(`CPU ${total}`);
  process.exit(0);
}

if (!Number.isInteger(root) || root <= 0 || !Number.isInteger(pollMs) || pollMs < 0) {
  console.log('CPU FAIL usage: tftp-cpu.js PID [POLL_MS]');
  process.exit(2);
}
poll(true);
if (pollMs > 0) setInterval(() => poll(false), pollMs);
else setInterval(() => undefined, 1 << 30); // stay alive until the signal
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
console.log('CPU ready');
