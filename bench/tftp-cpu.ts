// bench:tftp helper: CPU time a server process spends, with every thread and every child process
// it forks, from /proc/<pid>/task/<tid>/schedstat (nanoseconds on CPU). tftpd-hpa serves each
// transfer in a forked child it does not wait for, so its CPU never shows in its own /proc stat;
// this polls the process tree every POLL_MS and keeps each task's last figure. A task's CPU after
// its last poll is lost: the figure errs low, never high. With POLL_MS 0 the tree is read only at
// the start and at the end (for servers whose threads live on, so the helper costs them nothing).
// Not a test; Linux only.
//   node dist/bench/tftp-cpu.js PID [POLL_MS]   -> on SIGTERM or SIGINT prints `CPU <ns>` and exits
// The figure is the CPU spent between the start of this helper (`CPU ready`) and the signal.
import { readdirSync, readFileSync } from 'node:fs';

const root = Number(process.argv[2]);
const pollMs = Number(process.argv[3] ?? '0');
/** Per task (pid/tid): CPU ns when first seen (0 for a task born after the start) and last seen. */
const tasks = new Map<string, { first: number; last: number }>();
let started = false;

function readNumber(path: string): number | null {
  try {
    const first = readFileSync(path, 'utf8').split(' ')[0];
    const n = Number(first);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null; // the task ended between the listing and the read
  }
}

function children(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const tid of tids) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim() !== '') out.push(Number(c));
    } catch { /* gone */ }
  }
  return out;
}

function poll(): void {
  const stack = [root];
  for (let seen = 0; stack.length > 0 && seen < 10_000; seen++) {
    const pid = stack.pop()!;
    let tids: string[];
    try { tids = readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const tid of tids) {
      const ns = readNumber(`/proc/${pid}/task/${tid}/schedstat`);
      if (ns === null) continue;
      const key = `${pid}/${tid}`;
      const known = tasks.get(key);
      if (known) known.last = ns;
      else tasks.set(key, { first: started ? 0 : ns, last: ns });
    }
    stack.push(...children(pid));
  }
  started = true;
}

function finish(): void {
  poll();
  let total = 0;
  for (const t of tasks.values()) total += t.last - t.first;
  console.log(`CPU ${total}`);
  process.exit(0);
}

if (!Number.isInteger(root) || root <= 0 || !Number.isInteger(pollMs) || pollMs < 0) {
  console.log('CPU FAIL usage: tftp-cpu.js PID [POLL_MS]');
  process.exit(2);
}
poll();
if (pollMs > 0) setInterval(poll, pollMs);
else setInterval(() => undefined, 1 << 30); // stay alive until the signal
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
console.log('CPU ready');
