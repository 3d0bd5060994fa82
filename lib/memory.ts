// Memory of the daemon's processes, for `lanctl status` and the benches: where the resident memory
// goes (V8 heap, buffers outside it, the rest: code, stacks, the binary's pages).

/**
 * V8 flags for every lanha process (the systemd unit's ExecStart and the DNS worker processes): a
 * young generation of 1 MiB semi-spaces instead of growing to 16 MiB each under load. Scavenges
 * come more often but stay short (what survives them is small); resident memory under load drops
 * by ~20 MiB per process (services/dns/README.md, Memory).
 */
export const NODE_MEMORY_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

export interface ProcessMemory {
  pid: number;
  /** What the process is: "daemon" or e.g. "dns worker 0". */
  role: string;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  /** Memory of Buffers and other C++ objects tied to JS objects (arrayBuffers included). */
  externalMiB: number;
}

const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

/** This process's memory, from process.memoryUsage(). */
export function processMemory(role: string): ProcessMemory {
  const m = process.memoryUsage();
  return { pid: process.pid, role, rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), heapTotalMiB: mib(m.heapTotal), externalMiB: mib(m.external) };
}
