// Where a DHCPACK's time goes, REQUEST in to ACK handed to the socket, one ring of the last 4096
// durations per stage (lanctl status --json: services.dhcp.ackStages; bench:dhcp prints them):
//   decode   bytes -> message -> client request
//   decide   rate limits, leader check, the allocator, the host-name claim
//   queue    propose() called -> its batch's WAL write starts (behind the fsync in flight)
//   persist  that batch's write + fdatasync (on the thread pool), in two parts:
//     persist_wait  written -> the fdatasync covering it issued (behind the one in flight)
//     persist_sync  that fdatasync issued -> returned to the event loop
//   commit   fsync'd -> applied here (the followers' acknowledgements in a cluster)
//   resume   applied -> the handler runs again (promise hops, other work queued on the loop)
//   reply    lease check, options, encode, logging
//   send     the socket send call (the shell)
//   total    REQUEST handled -> ACK encoded (send not included)

export const ACK_STAGES = ['decode', 'decide', 'queue', 'persist', 'persist_wait', 'persist_sync', 'commit', 'resume', 'reply', 'send', 'total'] as const;
export type AckStage = typeof ACK_STAGES[number];

export interface StageSummary { p50Ms: number | null; p99Ms: number | null; meanMs: number | null }

const RING = 4096;

/** Per stage a ring of the last 4096 durations (a typed array: recording allocates nothing) and a running sum. */
export class AckStages {
  #rings = ACK_STAGES.map(() => new Float64Array(RING));
  #sums = ACK_STAGES.map(() => 0);
  #counts = ACK_STAGES.map(() => 0);

  record(stage: AckStage, ms: number): void {
    const i = ACK_STAGES.indexOf(stage);
    const v = ms > 0 ? ms : 0;
    this.#rings[i]![this.#counts[i]! % RING] = v;
    this.#sums[i]! += v;
    this.#counts[i]!++;
  }

  /** Per stage: median and p99 of the last 4096, mean since start (ms, 3 decimals). */
  summary(): Record<AckStage, StageSummary> {
    const round = (v: number | null): number | null => (v === null ? null : Math.round(v * 1000) / 1000);
    const out = {} as Record<AckStage, StageSummary>;
    ACK_STAGES.forEach((stage, i) => {
      const count = this.#counts[i]!;
      const sorted = this.#rings[i]!.slice(0, Math.min(count, RING)).sort();
      const q = (p: number): number | null => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!);
      out[stage] = { p50Ms: round(q(0.5)), p99Ms: round(q(0.99)), meanMs: count === 0 ? null : round(this.#sums[i]! / count) };
    });
    return out;
  }
}
