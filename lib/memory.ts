// Memory of the daemon's processes, for `lanctl status` and the benches: where the resident memory
// goes (V8 heap, buffers outside it, the rest: code, stacks, the binary's pages).

/**
 * V8 flags of the daemon (the systemd unit's ExecStart; the benches start it the same way): V8's
 * young generation grows to 2 x 16 MiB under load by default. 8 MiB semi-spaces keep what a request
 * holds while it waits for its fsync (a DHCP exchange, ~100 ms on a busy disk) dying young: with
 * 1 MiB, GC took ~1 ms per DHCPACK (everything in flight was promoted to the old generation), with 4
 * MiB 0.33 ms, with 8 MiB 0.19 ms, with the default 0.16 ms (services/dhcp/README.md).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/**
 * V8 flags of the DNS UDP worker processes: they hold nothing for long (an answer is sent in the same
 * turn; a forwarded miss waits one upstream round trip), so 2 MiB semi-spaces cost little GC and
 * keep ~25 MiB less resident per worker under load than the default.
 */
export const DNS_WORKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

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
