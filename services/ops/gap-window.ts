// The bookkeeping of one failover probe window (gap-probe.ts sends the probes): when the failover
// began, when each protocol first answered on the VIP, and the gap a client saw per protocol.
// Pure: the caller passes monotonic times in milliseconds.

export type ProbeProtocol = 'dns' | 'tftp' | 'ntp';
export type GapTrigger = 'transfer' | 'election';

export interface ProbeWindowResult {
  /** Wall time the window opened (ISO). */
  at: string;
  trigger: GapTrigger;
  /** The member that probed, and the address it probed. */
  from: string;
  target: string;
  /** What the gaps count from. */
  since: string;
  /** First answer per protocol, in seconds after the start; null: no answer before the window closed. */
  gaps: Array<{ protocol: ProbeProtocol | 'vip'; seconds: number | null; probes: number }>;
}

export class GapWindow {
  readonly trigger: GapTrigger;
  readonly startMs: number;
  readonly deadlineMs: number;
  #sent = new Map<ProbeProtocol, number>();
  #first = new Map<ProbeProtocol, number>();
  #protocols: readonly ProbeProtocol[];

  constructor(trigger: GapTrigger, startMs: number, deadlineMs: number, protocols: readonly ProbeProtocol[]) {
    this.trigger = trigger;
    this.startMs = startMs;
    this.deadlineMs = deadlineMs;
    this.#protocols = protocols;
  }

  get protocols(): readonly ProbeProtocol[] { return this.#protocols; }

  sent(protocol: ProbeProtocol): void {
    this.#sent.set(protocol, (this.#sent.get(protocol) ?? 0) + 1);
  }

  /** An answer arrived; true when it is the protocol's first (the one that counts). */
  answered(protocol: ProbeProtocol, atMs: number): boolean {
    if (this.#first.has(protocol) || !this.#protocols.includes(protocol)) return false;
    this.#first.set(protocol, Math.max(atMs, this.startMs));
    return true;
  }

  isAnswered(protocol: ProbeProtocol): boolean { return this.#first.has(protocol); }

  /** Every protocol answered, or the deadline passed. */
  done(nowMs: number): boolean {
    return nowMs >= this.deadlineMs || this.#protocols.every((p) => this.#first.has(p));
  }

  /** The gaps; `vip` is the first answer of any protocol on the VIP (the address is reachable again). */
  result(meta: Omit<ProbeWindowResult, 'trigger' | 'gaps'>): ProbeWindowResult {
    const gap = (p: ProbeProtocol): number | null => {
      const t = this.#first.get(p);
      return t === undefined ? null : Math.round(t - this.startMs) / 1000;
    };
    const answered = this.#protocols.map(gap).filter((s): s is number => s !== null);
    const probes = [...this.#sent.values()].reduce((n, c) => n + c, 0);
    return {
      ...meta,
      trigger: this.trigger,
      gaps: [
        { protocol: 'vip', seconds: answered.length === 0 ? null : Math.min(...answered), probes },
        ...this.#protocols.map((p) => ({ protocol: p, seconds: gap(p), probes: this.#sent.get(p) ?? 0 })),
      ],
    };
  }
}
