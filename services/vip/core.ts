// The VIP core: whether this node holds the floating address, as a pure function of time and of
// "am I the Raft leader with a valid lease". (state, input, nowMs) -> (state, actions). HA.md §2.5:
// acquire with a kernel lifetime (the backstop if this process hangs), renew at most every 500 ms
// while the lease holds, release the moment it does not, gratuitous ARPs on a fixed schedule.
// No clock, no `ip`, no sockets, no logs: server.ts turns the actions into commands.
//
// A member in degraded DHCP mode (HA.md 2.5, DEGRADED-SOLO: alone, no quorum, its partner silent and
// nobody answering ARP for the VIP) holds the VIP too, flagged degraded: same acquire, renewals and
// GARPs, no leader lease. It lets go the moment it is no longer degraded (a quorum is back) or
// another MAC answers ARP for the VIP (defend-or-yield, RFC 5227 2.4: a degraded holder always
// yields). A leader's lease takes a degraded holding over as its own. A leader adds the VIP only
// once no partner may hold it degraded any more (`heldBack`): the hand-back has no instant with two.

export interface VipTimings {
  /** valid_lft / preferred_lft of the address: the kernel drops it this long after the last renewal. */
  readonly lifetimeMs: number;
  /** Renew the lifetime at most this often (and at least this often while the lease holds). */
  readonly renewEveryMs: number;
  /** Strict mode: wait this long as leader before claiming (the old holder's kernel lifetime runs out first). */
  readonly claimDelayMs: number;
}

/** `fast`: claim as soon as we lead; `strict`: wait out the old holder's lifetime first (no overlap). */
export function vipTimings(mode: 'fast' | 'strict', lifetimeSeconds: number): VipTimings {
  const lifetimeMs = lifetimeSeconds * 1000;
  return { lifetimeMs, renewEveryMs: 500, claimDelayMs: mode === 'strict' ? lifetimeMs + 200 : 0 };
}

export interface VipState {
  readonly held: boolean;
  /** Monotonic time this holding began (null when not held). */
  readonly since: number | null;
  /** Last `ip addr replace` (acquire or renew): the kernel keeps the address until this + lifetime. */
  readonly renewedAt: number;
  /** First tick of the current stretch of valid leadership (strict mode waits from here). */
  readonly leaderSince: number | null;
  /** Offset from `since` of the next gratuitous ARP. */
  readonly nextGarpOffsetMs: number;
  /** After a failed acquire, do not try again before this time. */
  readonly retryAt: number;
  readonly acquisitions: number;
  readonly renewals: number;
  readonly garps: number;
  readonly releases: number;
  /** Held without a leader lease, because this member is in degraded DHCP mode. */
  readonly degraded: boolean;
}

export type ReleaseReason = 'lease-lost' | 'stop' | 'acquire-failed' | 'guard-expired' | 'degraded-left' | 'degraded-yield';

/**
 * What degraded mode says of the VIP: `hold` (degraded, no quorum, the last ARP probe unanswered),
 * `yield` (another MAC answered ARP for the VIP), `off` (not degraded).
 */
export type DegradedClaim = 'hold' | 'yield' | 'off';

export type VipAction =
  | { readonly kind: 'acquire'; readonly lifetimeS: number }
  | { readonly kind: 'renew'; readonly lifetimeS: number }
  | { readonly kind: 'garp'; readonly sequence: number }
  | { readonly kind: 'release'; readonly reason: ReleaseReason };

export interface VipInput {
  readonly nowMs: number;
  /** Raft leader, lease valid, not handing leadership away. */
  readonly leaseValid: boolean;
  /** Degraded mode's claim; absent (as `off`) when dhcp.degraded is not enabled. */
  readonly degraded?: DegradedClaim;
  /**
   * A leader does not add the VIP yet: a partner may still hold it degraded (cluster/degraded.ts
   * handBackRefusal). A holding already made is kept. Absent (as false) when dhcp.degraded is off.
   */
  readonly heldBack?: boolean;
}

export const initialVipState: VipState = {
  held: false, since: null, renewedAt: -Infinity, leaderSince: null, nextGarpOffsetMs: 0, retryAt: -Infinity,
  acquisitions: 0, renewals: 0, garps: 0, releases: 0, degraded: false,
};

/** One step: called on every shell tick (every few tens of ms) and whenever leadership changes. */
export function onTick(state: VipState, input: VipInput, timings: VipTimings): [VipState, VipAction[]] {
  const { nowMs, leaseValid } = input;
  const claim = input.degraded ?? 'off';
  // A leader's holding that lost its lease is let go even if degraded mode would claim: a degraded
  // holding starts afresh with its own acquire (degraded mode waits 5 s without a quorum anyway).
  const degradedHold = !leaseValid && claim === 'hold' && (!state.held || state.degraded);
  if (!leaseValid && !degradedHold) {
    const cleared: VipState = { ...state, leaderSince: null };
    if (!state.held) return [cleared, []];
    // Lease gone: let go at once. The kernel lifetime is only the backstop for a hung process.
    if (!state.degraded) return release(cleared, 'lease-lost');
    return release(cleared, claim === 'yield' ? 'degraded-yield' : 'degraded-left');
  }
  const leaderSince = leaseValid ? state.leaderSince ?? nowMs : null;
  let next: VipState = { ...state, leaderSince };
  const actions: VipAction[] = [];
  const lifetimeS = Math.max(1, Math.round(timings.lifetimeMs / 1000));
  if (!next.held) {
    // Degraded: no claim delay; the entry conditions already found no answer to ARP for the VIP.
    if (nowMs < next.retryAt || (leaderSince !== null && nowMs - leaderSince < timings.claimDelayMs)) return [next, []];
    // The hand-back (HA.md 2.5): a leader waits for a degraded holder to let go, so there is no instant with two.
    if (leaseValid && input.heldBack === true) return [next, []];
    next = { ...next, held: true, degraded: degradedHold, since: nowMs, renewedAt: nowMs, nextGarpOffsetMs: 0, acquisitions: next.acquisitions + 1 };
    actions.push({ kind: 'acquire', lifetimeS });
  } else {
    if (next.degraded && leaseValid) next = { ...next, degraded: false }; // the leader's lease holds it now
    if (nowMs - next.renewedAt >= timings.renewEveryMs) {
      next = { ...next, renewedAt: nowMs, renewals: next.renewals + 1 };
      actions.push({ kind: 'renew', lifetimeS });
    }
  }
  const since = next.since!;
  if (nowMs - since >= next.nextGarpOffsetMs) {
    // One ARP per tick even when ticks were late: a burst of catch-up ARPs says nothing new.
    next = { ...next, garps: next.garps + 1, nextGarpOffsetMs: nextGarpOffset(next.nextGarpOffsetMs, nowMs - since) };
    actions.push({ kind: 'garp', sequence: next.garps });
  }
  return [next, actions];
}

/** Service stop: give the address back (ExecStopPost= does the same if we never get here). */
export function onStop(state: VipState): [VipState, VipAction[]] {
  const cleared: VipState = { ...state, leaderSince: null };
  return state.held ? release(cleared, 'stop') : [cleared, []];
}

/** `ip addr replace` failed: we do not hold it; wait `retryMs` before trying again. */
export function onAcquireFailed(state: VipState, nowMs: number, retryMs = 1000): [VipState, VipAction[]] {
  // Delete whatever half-state the kernel may have, like any other release.
  const [next, actions] = state.held ? release(state, 'acquire-failed') : [state, []];
  return [{ ...next, retryAt: nowMs + retryMs }, actions];
}

/**
 * The guard deleted the address (our lease ran out while this process could not act): we no
 * longer hold it; the release action closes the VIP sockets, and a later tick with a valid lease
 * acquires it again (with a fresh GARP burst).
 */
export function onGuardExpired(state: VipState): [VipState, VipAction[]] {
  return state.held ? release(state, 'guard-expired') : [state, []];
}

/**
 * GARP schedule after taking the address (HA.md §2.5, like keepalived's garp_master_delay/refresh):
 * 0, 100 and 500 ms, then every 200 ms until 2.5 s, then one every 30 s.
 */
export function nextGarpOffset(previousOffsetMs: number, elapsedMs: number): number {
  let next: number;
  if (previousOffsetMs < 100) next = 100;
  else if (previousOffsetMs < 500) next = 500;
  else if (previousOffsetMs < 2500) next = previousOffsetMs + 200;
  else next = previousOffsetMs + 30_000;
  // A late tick skips the slots it already missed rather than firing them back to back.
  while (next <= elapsedMs) next = nextGarpOffset(next, -1);
  return next;
}

/** The moment the kernel drops the address if nobody renews it (-Infinity when not held). */
export function kernelExpiryMs(state: VipState, timings: VipTimings): number {
  return state.held ? state.renewedAt + timings.lifetimeMs : -Infinity;
}

function release(state: VipState, reason: ReleaseReason): [VipState, VipAction[]] {
  return [{ ...state, held: false, degraded: false, since: null, releases: state.releases + 1 }, [{ kind: 'release', reason }]];
}
