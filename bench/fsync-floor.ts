// Bench helper (not a test): the disk's own fdatasync latency, the floor under an ACK that waits for
// one. Writes as the WAL does (cluster/raft/wal.ts): a file prefilled with zeros, records of BYTES
// appended at RATE a second, each followed by an fdatasync, COUNT times; no Raft, no DHCP, no event
// loop work beside it.
//   node dist/bench/fsync-floor.js DIR [RATE=100] [COUNT=500] [BYTES=256] [MODE=sync|pool]
// MODE sync: fdatasyncSync on the main thread (the bare system call); pool: FileHandle.datasync()
// on libuv's thread pool, as the WAL calls it (the difference is the hand-off); with UV_USE_IO_URING=1
// in the environment libuv submits it to an io_uring instead (kernel threads: `iou-sqp-*` polls the
// submission ring, `iou-wrk-*` runs the fdatasync). Prints one JSON line {mode, count, p50Ms, p90Ms,
// p99Ms, maxMs, cpuMs, ioUringCpuMs, ioUringThreads}: cpuMs is the process's CPU over the loop (every
// thread, the io_uring ones too), ioUringCpuMs the part of it in io_uring threads still alive at the
// end (the SQPOLL thread lives as long as its ring); removes its file.
import { fdatasyncSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

const [dir = '.', rateText = '100', countText = '500', bytesText = '256', mode = 'sync'] = process.argv.slice(2);
const rate = Math.max(1, Math.min(Number(rateText), 10_000));
const count = Math.max(1, Math.min(Number(countText), 100_000));
const bytes = Math.max(1, Math.min(Number(bytesText), 1 << 20));

const file = join(dir, `fsync-floor-${process.pid}.bin`);
const fh = await open(file, 'w+');
try {
  // Prefilled as the WAL's tail is: the appends below overwrite blocks the file already has.
  const zeros = Buffer.alloc(Math.max(1 << 20, count * bytes + 65536));
  writeSync(fh.fd, zeros, 0, zeros.length, 0);
  await fh.datasync();
  const record = Buffer.alloc(bytes, 0x5a);
  const times: number[] = [];
  const cpuBefore = process.cpuUsage();
  let at = 0;
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    writeSync(fh.fd, record, 0, record.length, at);
    at += record.length;
    if (mode === 'pool') await fh.datasync(); else fdatasyncSync(fh.fd);
    times.push(performance.now() - start);
    const rest = 1000 / rate - (performance.now() - start);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
  const cpu = process.cpuUsage(cpuBefore);
  const uring = ioUringThreads();
  times.sort((a, b) => a - b);
  const q = (p: number): number => +times[Math.min(times.length - 1, Math.max(0, Math.ceil(p * times.length) - 1))]!.toFixed(3);
  process.stdout.write(`${JSON.stringify({
    mode, count, p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), maxMs: q(1),
    cpuMs: +((cpu.user + cpu.system) / 1000).toFixed(1), ioUringCpuMs: uring.cpuMs, ioUringThreads: uring.names,
  })}\n`);
} finally {
  await fh.close();
  rmSync(file, { force: true });
}

/** This process's io_uring kernel threads alive now (`iou-sqp-*`, `iou-wrk-*`) and their CPU (utime + stime, clock ticks of 10 ms). */
function ioUringThreads(): { names: string[]; cpuMs: number } {
  const names: string[] = [];
  let ticks = 0;
  for (const task of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!name.startsWith('iou-')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      names.push(name);
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
    } catch { /* the thread ended meanwhile */ }
  }
  return { names, cpuMs: ticks * 10 };
}
