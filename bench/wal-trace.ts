// Bench helper (not a test): where the WAL's fdatasync time goes in a running daemon, from a
// `perf trace -e pwrite64,fdatasync,write,epoll_pwait,epoll_wait -p PID` of it (bench/dhcp-fsync-trace.sh).
// The WAL writes a batch on the event loop (pwrite64), libuv's thread pool runs the fdatasync and
// wakes the loop (an 8-byte write to its eventfd), the loop returns from epoll and acknowledges.
// Per fdatasync of the WAL's fd (the fd of the pwrite64s that are not the prefill's zeros):
//   syscall   the fdatasync itself: what bench/fsync-floor.ts measures (the disk's floor)
//   handoff   the batch's pwrite64 ended -> the fdatasync began (a pool thread woken and run)
//   wake      the pool thread's eventfd write ended -> the event loop's epoll call returned
//   total     pwrite64 began -> the event loop returned (what the WAL's own fsync figure holds, roughly)
//   node dist/bench/wal-trace.js TRACE_FILE
// Prints one JSON line: {count, syscall, handoff, wake, total: {p50Ms, p99Ms, maxMs}}.
import { readFileSync } from 'node:fs';
import { percentile } from './stats.js';

interface Call { start: number; end: number; tid: number; name: string; args: string }

const [file = 'perf-trace.txt'] = process.argv.slice(2);
const calls: Call[] = [];
// "  1100.978 ( 0.054 ms): node/9197 pwrite64(fd: 18, buf: 0x24bf0588, count: 202, pos: 738) = 202"
const line = /^\s*([\d.]+) \(\s*([\d.]+) ms\): [^/]+\/(\d+) (\w+)\((.*)$/;
for (const text of readFileSync(file, 'utf8').split('\n')) {
  const m = line.exec(text);
  if (m === null) continue;
  const start = Number(m[1]);
  calls.push({ start, end: start + Number(m[2]), tid: Number(m[3]), name: m[4]!, args: m[5]! });
}
calls.sort((a, b) => a.start - b.start);
const fdOf = (c: Call): string | undefined => /fd: (\d+)/.exec(c.args)?.[1];
// The WAL's fd: the one fdatasync is called on most.
const counts = new Map<string, number>();
for (const c of calls) if (c.name === 'fdatasync') counts.set(fdOf(c) ?? '', (counts.get(fdOf(c) ?? '') ?? 0) + 1);
const walFd = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
const loopTid = calls.find((c) => c.name === 'pwrite64' && fdOf(c) === walFd)?.tid;

const syscall: number[] = [];
const handoff: number[] = [];
const wake: number[] = [];
const total: number[] = [];
let lastWrite: Call | undefined;
for (let i = 0; i < calls.length; i++) {
  const c = calls[i]!;
  if (c.name === 'pwrite64' && fdOf(c) === walFd && !/count: \d{5,}/.test(c.args)) lastWrite = c;
  if (c.name !== 'fdatasync' || fdOf(c) !== walFd) continue;
  syscall.push(c.end - c.start);
  if (lastWrite !== undefined && lastWrite.end <= c.start) handoff.push(c.start - lastWrite.end);
  // The same thread's next 8-byte write: the wake-up of the event loop.
  const signal = calls.slice(i + 1).find((x) => x.tid === c.tid && x.name === 'write' && /count: 8\b/.test(x.args));
  if (signal === undefined) continue;
  const back = calls.find((x) => x.tid === loopTid && (x.name === 'epoll_pwait' || x.name === 'epoll_wait') && x.end >= signal.end);
  if (back === undefined) continue;
  wake.push(back.end - signal.end);
  if (lastWrite !== undefined && lastWrite.end <= c.start) total.push(back.end - lastWrite.start);
  lastWrite = undefined;
}
const figures = (v: number[]): { p50Ms: number; p99Ms: number; maxMs: number } =>
  ({ p50Ms: +percentile(v, 50).toFixed(3), p99Ms: +percentile(v, 99).toFixed(3), maxMs: +Math.max(...v).toFixed(3) });
process.stdout.write(`${JSON.stringify({ count: syscall.length, syscall: figures(syscall), handoff: figures(handoff), wake: figures(wake), total: figures(total) })}\n`);
