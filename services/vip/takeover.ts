// The parts of a VIP gap as a LAN client lives it, from both ends of a failover. Pure: the shell
// (server.ts, failover.ts) passes monotonic times it took; each node only subtracts its own times.
//
//   old holder:  [drain: VIP still serves] release (ip addr del, sockets closed) -> TimeoutNow sent
//   new holder:  trigger (TimeoutNow received | last heard the old leader) -> elected -> lease valid
//                and the VIP tick ran -> `ip addr` done -> sockets bound on the VIP -> first GARP out
//
// A client's silence runs from the old holder's release (or its crash) to the new holder's first
// GARP: the two halves add up, plus one LAN hop (sub-millisecond, not counted).

import type { RaftTimeline } from '../../cluster/raft-state-log.js';

/** Times the VIP service took while acquiring (monotonic ms). */
export interface AcquireMarks {
  /** The tick that decided to acquire. */
  decidedAt: number;
  /** `ip addr replace` returned. */
  addressAt: number;
  /** DNS/TFTP/NTP listen on the VIP. */
  boundAt: number;
  /** The first gratuitous ARP was handed to arping. */
  garpAt: number;
}

export interface TakeoverReport {
  /**
   * `transfer`: a planned handover (TimeoutNow); `election`: the old leader went silent;
   * `re-acquire`: this node lost the VIP while still leader (its lease lapsed, or the guard deleted
   * it) and takes it again in the same leadership: counted from that loss, not from the election.
   */
  trigger: 'transfer' | 'election' | 're-acquire';
  /** Named parts in order, ms each; they add up to `totalMs`. */
  parts: Array<[string, number]>;
  /** From the trigger to the first GARP. */
  totalMs: number;
}

/** A TimeoutNow this long before winning is not what made us win. */
const TRANSFER_WINDOW_MS = 5000;

const ms = (v: number): number => Math.max(0, Math.round(v));

/**
 * The new holder's half of the gap, from its Raft timeline and its acquire marks. `lostAt`: when
 * this node last lost a VIP it held (null: never); lost after it became leader, this acquire is a
 * re-acquire in the same leadership, and its gap starts at that loss.
 */
export function takeoverReport(timeline: RaftTimeline, marks: AcquireMarks, lostAt: number | null = null): TakeoverReport {
  const { heardLeaderAt, timeoutNowAt, preCandidateAt, candidateAt } = timeline;
  const leaderAt = timeline.leaderAt ?? marks.decidedAt;
  if (lostAt !== null && lostAt >= leaderAt && lostAt <= marks.decidedAt) {
    const parts: Array<[string, number]> = [
      ['lease lapse', marks.decidedAt - lostAt],
      ...vipSteps(marks),
    ];
    return { trigger: 're-acquire', parts: parts.map(([name, v]) => [name, ms(v)]), totalMs: ms(marks.garpAt - lostAt) };
  }
  const parts: Array<[string, number]> = [];
  let trigger: TakeoverReport['trigger'] = 'election';
  let from = leaderAt;
  // TimeoutNow makes a member campaign at once, with no pre-vote (the old leader keeps sending
  // heartbeats meanwhile, so "last heard" says nothing here).
  const transfer = timeoutNowAt !== null && timeoutNowAt <= leaderAt && leaderAt - timeoutNowAt < TRANSFER_WINDOW_MS
    && candidateAt !== null && candidateAt >= timeoutNowAt && (preCandidateAt === null || preCandidateAt < timeoutNowAt);
  if (transfer) {
    trigger = 'transfer';
    from = timeoutNowAt;
    parts.push(['vote', leaderAt - timeoutNowAt]);
  } else if (heardLeaderAt !== null && heardLeaderAt <= leaderAt) {
    // Detection: silence until our randomized election timeout fired; then a pre-vote round and a vote round.
    from = heardLeaderAt;
    const pre = preCandidateAt !== null && preCandidateAt >= heardLeaderAt && preCandidateAt <= leaderAt ? preCandidateAt : null;
    const cand = candidateAt !== null && candidateAt >= (pre ?? heardLeaderAt) && candidateAt <= leaderAt ? candidateAt : null;
    if (pre !== null && cand !== null) {
      parts.push(['detection', pre - heardLeaderAt], ['pre-vote', cand - pre], ['vote', leaderAt - cand]);
    } else if (cand !== null) {
      parts.push(['detection', cand - heardLeaderAt], ['vote', leaderAt - cand]);
    } else {
      parts.push(['election', leaderAt - heardLeaderAt]);
    }
  }
  parts.push(['lease wait', marks.decidedAt - leaderAt], ...vipSteps(marks));
  const rounded = parts.map(([name, v]): [string, number] => [name, ms(v)]);
  return { trigger, parts: rounded, totalMs: ms(marks.garpAt - from) };
}

/** The VIP's own steps, from the tick that decided to acquire to the first GARP. */
function vipSteps(marks: AcquireMarks): Array<[string, number]> {
  return [
    ['ip addr', marks.addressAt - marks.decidedAt],
    ['sockets bound', marks.boundAt - marks.addressAt],
    ['first GARP', marks.garpAt - marks.boundAt],
  ];
}

/** "release 4 + vote 12 + ip addr 6 = 22 ms" */
export function formatParts(parts: ReadonlyArray<readonly [string, number]>, totalMs: number): string {
  return `${parts.map(([name, v]) => `${name} ${v}`).join(' + ')} = ${totalMs} ms`;
}
