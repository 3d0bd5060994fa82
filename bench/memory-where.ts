// bench helper: where the resident memory of lanha's processes goes (issue 14), from the kernel's
// mappings (/proc/PID/smaps) and the daemon's own V8 figures (`lanctl status --json` -> memory).
//   node dist/bench/memory-where.js PID SOCKET LABEL
// PID is the daemon's; its child processes (the DNS UDP workers, the NTP capture) are found by PPID.
// Prints one line per process and one for the whole:
//   RESULT dhcp.memory.where_mib.LABEL process=daemon rss=.. anon=.. v8_new=.. ... file_node=.. threads=..
//   RESULT dhcp.memory.where_mib.LABEL process=all anon=.. file=.. alone=..
// Parts of a process (MiB resident):
//   v8_new/old/code/large  the main thread's V8 heap spaces (what V8 says is resident)
//   v8_rest   the other anonymous pages outside malloc and stacks: worker threads' heaps (TFTP
//             transfers, the config thread while it runs), V8's own tables, large Buffers
//   malloc    the C heap ([heap] and glibc's per-thread arenas): Node and V8 internals, small Buffers
//   stacks    the main stack and the threads' stacks (touched pages)
//   big       anonymous mappings of 16 MiB or more outside malloc: the TFTP block cache
//             (tftp.cacheMiB reserved, resident only as far as it was filled)
//   external  V8's external memory (Buffers and the like: inside malloc, v8_rest or big)
//   file_node the process's own binary's pages (node's (code, read-only data; shared by every node process on the
//             machine: counted once in `alone`), file_other the libraries' and other files'
//   (pss_file of phase 7 divides them between every process on the machine mapping them, other
//   benches' node processes too: it varies with what else runs)
// `alone` is what a machine running only lanha holds for it: every process's anonymous pages plus
// the file pages of each file once (the processes share the node binary and libc: per file, the
// most any one process has resident).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SmapsParts {
  anonKiB: number;
  mallocKiB: number;
  stacksKiB: number;
  bigKiB: number;
  fileNodeKiB: number;
  fileOtherKiB: number;
  /** Resident file pages per file path (for the union over processes). */
  files: Map<string, number>;
}

interface Vma { start: bigint; end: bigint; perm: string; path: string; rssKiB: number; anonKiB: number }

const KIB = 1024n;
const ARENA = 64n * 1024n * 1024n;
const BIG = 16n * 1024n * 1024n;
const STACK_MIN = 512n * 1024n;

/** Splits /proc/PID/smaps text into its mappings (address range, permissions, path, Rss, Anonymous). */
export function parseSmaps(text: string): Vma[] {
  const out: Vma[] = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) { out.push({ start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perm: head[3]!, path: head[4]!.trim(), rssKiB: 0, anonKiB: 0 }); continue; }
    const field = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    const last = out[out.length - 1];
    if (field !== null && last !== undefined) { if (field[1] === 'Rss') last.rssKiB = Number(field[2]); else last.anonKiB = Number(field[2]); }
  }
  return out;
}

/**
 * Where a process's resident pages are, by kind of mapping: glibc's malloc arenas (a read-write
 * start of a 64 MiB-aligned 64 MiB reservation) and [heap], thread stacks (read-write after a
 * one-page guard, 512 KiB or more) and [stack], big anonymous mappings, the node binary's file
 * pages (`exe`) and other files'. anonKiB counts every anonymous page (malloc, stacks and big too).
 */
export function smapsParts(text: string, exe: string): SmapsParts {
  const vmas = parseSmaps(text);
  const p: SmapsParts = { anonKiB: 0, mallocKiB: 0, stacksKiB: 0, bigKiB: 0, fileNodeKiB: 0, fileOtherKiB: 0, files: new Map() };
  vmas.forEach((v, i) => {
    p.anonKiB += v.anonKiB;
    const file = v.path !== '' && !v.path.startsWith('[');
    if (file) {
      const fileKiB = v.rssKiB - v.anonKiB; // a private file page written to (relocations) is anonymous
      if (v.path === exe) p.fileNodeKiB += fileKiB; else p.fileOtherKiB += fileKiB;
      p.files.set(v.path, (p.files.get(v.path) ?? 0) + fileKiB);
      return;
    }
    if (v.path === '[heap]') { p.mallocKiB += v.anonKiB; return; }
    if (v.path === '[stack]') { p.stacksKiB += v.anonKiB; return; }
    if (v.path !== '' || v.perm !== 'rw-p') return;
    const next = vmas[i + 1];
    const prev = vmas[i - 1];
    const size = v.end - v.start;
    if (v.start % ARENA === 0n && (size === ARENA || (next !== undefined && next.start === v.end && next.perm === '---p' && next.end - v.start === ARENA))) p.mallocKiB += v.anonKiB;
    else if (prev !== undefined && prev.end === v.start && prev.perm === '---p' && prev.end - prev.start === 4n * KIB && size >= STACK_MIN) p.stacksKiB += v.anonKiB;
    else if (size >= BIG) p.bigKiB += v.anonKiB;
  });
  return p;
}

interface StatusProcess { pid: number; role: string; rssMiB: number; externalMiB: number; heapSpacesMiB?: { new: number; old: number; code: number; largeObject: number } }

const mib = (kib: number): string => (kib / 1024).toFixed(1);

function main(): void {
  const [pidText = '', socket = '', label = 'now'] = process.argv.slice(2);
  const pid = Number(pidText);
  let v8: StatusProcess[] = [];
  try {
    const lanctl = fileURLToPath(new URL('../bin/lanctl.js', import.meta.url));
    const j = JSON.parse(execFileSync(process.execPath, [lanctl, 'status', '--json', '--socket', socket], { encoding: 'utf8' })) as { memory?: { processes?: StatusProcess[] } };
    v8 = j.memory?.processes ?? [];
  } catch { /* the daemon does not answer: the kernel's figures alone */ }
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  let anon = 0; const files = new Map<string, number>();
  for (const p of [pid, ...children]) {
    let text: string; let exe: string; let cmdline: string; let threads: number;
    try {
      text = readFileSync(`/proc/${p}/smaps`, 'utf8');
      exe = readlinkSync(`/proc/${p}/exe`);
      cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
      threads = readdirSync(`/proc/${p}/task`).length;
    } catch { continue; } // gone meanwhile
    const parts = smapsParts(text, exe);
    const role = p === pid ? 'daemon' : cmdline.includes('udp-worker.js') ? 'dns_worker' : cmdline.includes('tcpdump') ? 'ntp_capture' : 'other';
    const own = v8.find((x) => x.pid === p);
    const h = own?.heapSpacesMiB;
    const heapKiB = h === undefined ? 0 : (h.new + h.old + h.code + h.largeObject) * 1024;
    const restKiB = Math.max(0, parts.anonKiB - parts.mallocKiB - parts.stacksKiB - parts.bigKiB - heapKiB);
    anon += parts.anonKiB;
    for (const [path, kib] of parts.files) files.set(path, Math.max(files.get(path) ?? 0, kib));
    const v8Fields = h === undefined ? 'v8_new=NA v8_old=NA v8_code=NA v8_large=NA external=NA'
      : `v8_new=${h.new} v8_old=${h.old} v8_code=${h.code} v8_large=${h.largeObject} external=${own!.externalMiB}`;
    console.log(`RESULT dhcp.memory.where_mib.${label} process=${role} pid=${p} anon=${mib(parts.anonKiB)} ${v8Fields} v8_rest=${mib(restKiB)} malloc=${mib(parts.mallocKiB)} stacks=${mib(parts.stacksKiB)} big=${mib(parts.bigKiB)} file_node=${mib(parts.fileNodeKiB)} file_other=${mib(parts.fileOtherKiB)} threads=${threads} unit=MiB`);
  }
  const file = [...files.values()].reduce((a, b) => a + b, 0);
  console.log(`RESULT dhcp.memory.where_mib.${label} process=all anon=${mib(anon)} file=${mib(file)} alone=${mib(anon + file)} unit=MiB`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
