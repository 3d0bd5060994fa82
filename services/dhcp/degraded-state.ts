import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { AlreadySaidError, LanhaError, errorMessage } from '../../lib/errors.js';
import { fdShortageCode, fdUsage } from '../../lib/fd-exhaustion.js';
import { formatIpv4, type Ipv4 } from '../../lib/ipv4.js';
import type { Command } from '../../cluster/commands.js';
import type { AppliedEntry, Fsm } from '../../cluster/fsm.js';
import type { MemberView } from '../../cluster/member-status.js';
import { logNowMs, type StateLog, type StateLogStatus } from '../../cluster/state-log.js';
import { DEGRADED_AFTER_MS, DEGRADED_HOLD_MS, decideLeaderGrant, degradedRefusal, handBackVerdict, partnerKnowsUntil, VIP_PROBE_FRESH_MS, type HandBackFacts, reportSlice, type DegradedRecord, type DegradedVipReport, type PartnerPorts, type PoolOwnership } from '../../cluster/degraded.js';
import { REPORT_EVERY_MS } from '../../cluster/member-status.js';
import { DegradedLeases } from '../../cluster/degraded-leases.js';
import type { AllocationPolicy } from './allocator.js';
import type { DegradedView } from './degraded-config.js';
import { DEGRADED_JOURNAL_FILE, JournalWriter, compactRecords, journalBytes, readJournal, rewriteJournal, supersededCount } from './degraded-journal.js';
import { writeFileDurablySync } from '../../lib/durable-file.js';

// Degraded split-pool DHCP, the shell (HA.md 2.4-2.5, DEGRADED-SOLO): a StateLog for the DHCP
// service only, over the cluster's. While the cluster has a quorum it passes everything through
// (and keeps the leader to its half of the pools, cluster/degraded.ts decideLeaderGrant). A LAN
// member without a quorum for 5 s whose partner is silent, whose state directory is whole, and for
// whose VIP no one answers 3 ARP probes 100 ms apart, becomes DEGRADED: it answers DHCP alone, from
// its own half, with the MCLT rules, every grant fdatasync'd to its journal (degraded-journal.ts)
// before the ACK. It leaves at once when a quorum is back, or when the VIP answers (another node
// holds it: a degraded member always yields). The journal is then merged into the log as one
// `lease.merge` entry: by this member when it leads, else by the leader, which reads it from this
// member's report; once the merge is applied here the journal is cleared.

/** A member report's view of this member's journal (cluster/member-status.ts `degradedJournal`). */
export interface JournalReport {
  journal: string;
  from: number;
  records: DegradedRecord[];
}

/** At most this many records (and bytes of them) travel in one report (and so one merge entry); the rest follow. */
export const REPORT_RECORDS_MAX = 2000;
const REPORT_JOURNAL_BYTES = 256 * 1024;
/** The partner counts as heard while its last report is younger than this. */
const PARTNER_SILENT_MS = 5000;
/** A VIP probe's answer holds this long; while degraded the VIP is probed again this often. */
const PROBE_VALID_MS = 3000;
/**
 * While degraded the VIP is probed again this long after the last probe ended (a probe itself takes
 * about 1.2 s when nobody answers): this member holds the VIP then, and yields it on an answer.
 */
const ACTIVE_PROBE_GAP_MS = 200;
/** A yield to another MAC answering for the VIP is reported to the VIP service this long. */
const YIELD_TOLD_MS = 5000;
/**
 * After yielding to a partner back on the LAN whose reports are silent (#partnerBack), if nobody
 * holds the VIP this long after (a probe started since finds it unanswered), the partner could not
 * lead (no quorum on its side either, or its log behind the witness's): this member goes degraded
 * again and holds on until a leader is heard, and does not yield that way again until the partner
 * is heard, goes silent, or a quorum is back (else it would let go and take back the VIP for as
 * long as the cut lasts). A Raft term newer than the one at the yield (the partner campaigned with
 * the witness: it may be elected, and adds the VIP after its own probe) starts the wait again.
 */
export const PARTNER_BACK_WAIT_MS = 6000;
const TICK_MS = 250;
/** A leader holding the VIP starts its next hand-back probe this long after the last ended (leaderHolding): one always ended within VIP_PROBE_FRESH_MS. */
const HOLDING_PROBE_GAP_MS = 300;
/**
 * A gap this long between two looks at the mode (the VIP's ticks and this mode's, every 250 ms at
 * most) is a stall of this process: the VIP's guard may have deleted a degraded holding meanwhile
 * (DEGRADED_HOLD_MS) and a leader taken it, so the VIP is claimed again only after a new probe.
 */
const STALL_MS = DEGRADED_HOLD_MS - 200;

/**
 * The log index a grant decided alone resolves with: none (it is in the journal, not the log). The
 * ACK audit skips ACKs of this index, also when the quorum came back while the journal's fsync ran.
 */
export const DEGRADED_INDEX = 0;

export type VipProbe = () => Promise<'answered' | 'silent' | { failed: string }>;

export interface DegradedStateOptions {
  inner: StateLog;
  self: string;
  ownership: PoolOwnership;
  mcltMs: number;
  stateDir: string;
  /** The other members' last reports (the member board). */
  members: () => Record<string, MemberView>;
  /** ARP-probes the VIP (3 probes, 100 ms apart); null: no VIP configured, nothing to probe. */
  probeVip: VipProbe | null;
  /**
   * ARP-probes the partner's LAN address (cluster.members) the same way, beside the VIP before
   * entering: a partner host that answers is up, its cluster link is what failed (null: no VIP
   * interface to probe on, or the partner's address is not an IPv4 address).
   */
  probePartner?: { address: string; probe: VipProbe; onVipLan?: boolean; ports?: () => Promise<PartnerPorts> } | null;
  clock: Clock;
  log: Logger;
  /** The journal is compacted once it holds this many records, half of them superseded (default COMPACT_MIN_RECORDS). */
  compactMinRecords?: number;
  /**
   * Sends this member's report now (ServiceContext.reportNow): called when a quorum is seen after
   * none, so a leader held back by what the last report said (degraded, or long without a quorum)
   * hears at once that this member will not take the VIP.
   */
  reportNow?: (() => void) | undefined;
  /** When this member, leading, first wrote `peer` a report saying so, and in which term (ServiceContext.leadReportSent). */
  leadReportSent?: ((peer: string) => { term: number; monoMs: number } | null) | undefined;
}

/**
 * A journal of this many records, half of them superseded by a later record of the same (ip, mac),
 * is compacted in place (degraded-journal.ts compactRecords); then again at twice what it kept.
 */
export const COMPACT_MIN_RECORDS = 1000;

export class DegradedStateLog implements StateLog {
  readonly counters = new Counters();
  /** A digest of the pool halves: the partner's report carries its own, and they must agree. */
  readonly poolSplit: string;
  #o: DegradedStateOptions;
  #leases: DegradedLeases;
  #writer: JournalWriter;
  #path: string;
  #active = false;
  #activeSinceWall: number | null = null;
  #noQuorumSince: number | null = null;
  #probe: { at: number; started?: number; answered: boolean | null; failed?: string; partnerAnswered?: boolean; partnerPorts?: PartnerPorts | null } | null = null;
  #probing = false;
  /** Monotonic ms this log started: a partner not heard from since may hold the VIP degraded. */
  readonly #startedMono: number;
  #lastLookMono: number | null = null;
  /** A stall ended here (monotonic ms): the VIP is claimed again only after a probe started since. */
  #stalledAt: number | null = null;
  /** When this member last left degraded mode because another MAC answered ARP for the VIP (monotonic ms). */
  #yieldedAt: number | null = null;
  #refusal: string | null = 'not checked yet';
  /** The ARP probe at start of the partner's address and the VIP (cluster/degraded.ts HandBackFacts.partnerArp); null: not probed. */
  #startArp: 'off-lan' | 'lanha-down' | 'answers' | 'probing' | null = null;
  /** This member's last ARP probe of the VIP as leader before a hand-back on its partner's silence (cluster/degraded.ts HandBackFacts.vipProbe). */
  #handBackProbe: { endedMs: number; answered: boolean } | null = null;
  #handBackProbing = false;
  /** When this member yielded to its partner back on the LAN (#partnerBack), and whether it took the VIP back since (no taker). */
  #yieldedToPartner: number | null = null;
  /** The Raft term at that yield, or at its last change since (#noTaker). */
  #yieldTerm = 0;
  /** Degraded at some point since the quorum was last seen: a partner back on the LAN later starts the wait for a taker too. */
  #degradedStretch = false;
  #partnerBackSpent = false;
  #merging = new Set<string>();
  #clearing = false;
  /** A compaction of the journal in progress: grants wait for it (their records go to the new file). */
  #compacting: Promise<void> | null = null;
  #compactAt: number;
  #timer: NodeJS.Timeout | null = null;
  #limiter = new LogLimiter(30_000, 1);
  /** The journal could not be opened for want of file descriptors: since (monotonic ms), grants refused since. */
  #fdShort: { since: number; refused: number } | null = null;
  #policy: ((p: AllocationPolicy) => void) | null = null;
  #unsubscribe: () => void;
  readonly #ownOnly: AllocationPolicy;

  constructor(o: DegradedStateOptions) {
    this.#o = o;
    this.#startedMono = o.clock.monotonicMs();
    this.#compactAt = o.compactMinRecords ?? COMPACT_MIN_RECORDS;
    this.poolSplit = createHash('sha256').update(JSON.stringify([o.ownership.members, o.ownership.halves])).digest('hex').slice(0, 16);
    this.#path = join(o.stateDir, DEGRADED_JOURNAL_FILE);
    this.#writer = new JournalWriter(this.#path);
    this.#leases = new DegradedLeases({ self: o.self, ownership: o.ownership, mcltMs: o.mcltMs, committed: o.inner.fsm, journal: newJournalId() });
    // Leader or alone, new bindings come from this member's half only (HA.md 2.4, normal rule 4: the
    // leader borrows nothing); a binding in the partner's half is renewed within what the partner holds.
    this.#ownOnly = {
      mayAllocate: (ip) => o.ownership.ownerOf(ip) === o.self && !this.#pendingHolds(ip),
      prefers: (ip) => o.ownership.ownerOf(ip) === o.self,
      keeps: (lease, nowMs) => (this.#active ? lease.expiresAt + o.mcltMs : partnerKnowsUntil(lease, o.mcltMs, this.#partnerApplied())) - nowMs >= 1000,
      reuseAfterMs: o.mcltMs,
    };
    this.#unsubscribe = o.inner.fsm.subscribe((entry) => {
      if (entry.command.type !== 'lease.merge') return;
      const sum = o.inner.fsm.degradedMerged(entry.command.node);
      const facts = { event: 'dhcp.degraded.merged', node: entry.command.node, journal: entry.command.journal, records: entry.command.records.length, index: entry.index, conflicts: sum?.conflicts ?? 0 };
      if ((sum?.conflicts ?? 0) > 0) o.log.error(facts, `${entry.command.node}'s degraded journal merged with ${sum!.conflicts} conflicts in all (an address bound to two clients: a bug; lanctl doctor names them)`);
      else o.log.info(facts, `${entry.command.node}'s degraded journal merged: ${entry.command.records.length} bindings, 0 conflicts`);
    });
  }

  /** Reads the journal left on the disk (a restart while degraded or before its merge) and starts the checks. */
  start(setPolicy: (p: AllocationPolicy) => void): void {
    this.#policy = setPolicy;
    setPolicy(this.#ownOnly);
    const found = readJournal(this.#path);
    if (found === null) {
      // The header first: the journal's id and the number of its first record.
      writeFileDurablySync(this.#path, journalBytes(this.#leases.journal, 1, []), 0o600);
    } else {
      if (found.cutBytes > 0) this.#o.log.warn({ event: 'dhcp.degraded.journal_cut', path: this.#path, bytes: found.cutBytes }, `the degraded journal ended in a torn record (${found.cutBytes} bytes, a crash while writing it: never ACKed); cut`);
      this.#leases.load(found.journal, found.from, found.records);
      if (found.records.length > 0) this.#o.log.warn({ event: 'dhcp.degraded.journal_pending', path: this.#path, records: found.records.length }, `${found.records.length} degraded bindings wait in ${this.#path} to be merged into the log`);
    }
    this.#timer = setInterval(() => this.tick(), TICK_MS);
    this.#timer.unref();
    this.#probeAtStart();
  }

  /**
   * A partner not heard from since this start may hold the VIP degraded, so a leader elected now
   * waits for its report or its guard (2.5 s from the start). Its LAN address and the VIP are
   * probed once now: both silent (its machine down or off this LAN) and a leader need not wait.
   * Only when the partner's address and this member's are in the VIP's subnet (`onVipLan`): then
   * an answer would have come on this LAN, and the partner, probing this member's address before
   * it enters degraded mode, cannot enter it while this member is up on it.
   */
  #probeAtStart(): void {
    const partner = this.#o.probePartner;
    if (partner?.onVipLan !== true || this.#o.probeVip === null) return;
    this.#startArp = 'probing';
    const quiet = (p: Promise<'answered' | 'silent' | { failed: string }>) => p.catch((error: unknown) => ({ failed: errorMessage(error) }));
    void Promise.all([quiet(this.#o.probeVip()), quiet(partner.probe()), this.#ports()]).then(([vip, address, ports]) => {
      // Its machine answers, nobody answers for the VIP and both its ports reset: its lanha is down, it holds nothing.
      this.#startArp = address === 'answered' ? (vip === 'silent' && ports === 'refused' ? 'lanha-down' : 'answers') : address === 'silent' && vip === 'silent' ? 'off-lan' : null;
      if (this.#startArp === 'lanha-down') this.#o.log.info({ event: 'dhcp.degraded.partner_lanha_down', partner: this.#o.ownership.partnerOf(this.#o.self), address: partner.address },
        `partner ${partner.address} answers ARP but its cluster port and its DNS (or NTP) port refuse connections and nobody answers for the VIP: its lanha is down, so as leader this member adds the VIP without waiting for its report`);
      if (this.#startArp === 'off-lan') this.#o.log.info({ event: 'dhcp.degraded.partner_off_lan', partner: this.#o.ownership.partnerOf(this.#o.self), address: partner.address },
        `partner ${partner.address} and the VIP answer no ARP: the partner's machine is down or off this LAN, so as leader this member adds the VIP without waiting for its report`);
    });
  }

  get active(): boolean { return this.#active; }
  get fsm(): Fsm { return this.#active ? this.#leases.overlay : this.#o.inner.fsm; }
  isLeader(): boolean { return this.#active || this.#o.inner.isLeader(); }
  stateCurrent(): boolean { return !this.#active && this.#o.inner.stateCurrent?.() === true; }
  logTimeMs(): number { return logNowMs(this.#o.inner, this.#o.clock); }
  committedTerm(index: number): number | undefined { return this.#active ? undefined : this.#o.inner.committedTerm?.(index); }
  status(): StateLogStatus { return this.#o.inner.status(); }
  async close(): Promise<void> { this.stop(); }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#unsubscribe();
    void this.#writer.close();
  }

  async propose(command: Command): Promise<AppliedEntry> {
    if (this.#active && this.#compacting !== null) await this.#compacting;
    const now = this.logTimeMs();
    if (!this.#active) {
      if (command.type === 'lease.grant') {
        const pending = this.#leases.overlayHolds(command.ip, command.mac, now);
        if (pending) throw new LanhaError('unavailable', `${formatIpv4(command.ip)} is bound in this member's degraded journal, not merged yet`);
        const d = decideLeaderGrant({ ip: command.ip, mac: command.mac, leaseMs: command.leaseMs }, this.#o.inner.fsm.lease(command.ip), this.#o.self, this.#o.ownership, this.#o.mcltMs, this.#partnerApplied(), now);
        if (!d.ok) throw new LanhaError('unavailable', d.reason);
        return this.#o.inner.propose(d.leaseMs === command.leaseMs ? command : { ...command, leaseMs: d.leaseMs });
      }
      return this.#o.inner.propose(command);
    }
    const outcome = this.#leases.decide(command, now);
    if (outcome.kind === 'refused') {
      this.counters.inc('refused');
      throw new LanhaError('unavailable', `degraded: ${outcome.reason}`);
    }
    if (outcome.kind === 'local') {
      this.#leases.applyLocal(command, now);
      return { index: DEGRADED_INDEX, at: now, command };
    }
    // HA.md degraded rule 3: durable in the journal before the ACK.
    await this.#journal(outcome.record);
    this.#leases.add(outcome.record);
    this.counters.inc(`journaled.${outcome.record.state}`);
    this.#maybeCompact();
    const applied: Command = command.type === 'lease.grant' ? { ...command, leaseMs: outcome.record.expiresAt - outcome.record.at } : command;
    return { index: DEGRADED_INDEX, at: outcome.record.at, by: this.#o.self, command: applied };
  }

  /**
   * Appends one record. Out of file descriptors (the journal's file cannot be opened: EMFILE or
   * ENFILE) nothing is written and nothing ACKed, and each grant tries again (the client retries);
   * the shortage is said once, `dhcp.degraded.journal_fd_exhausted`, with what can be read of the
   * descriptors, and its end once, `dhcp.degraded.journal_fd_recovered`, as the Raft storage does.
   * The refusals in between are counted and thrown as already said (the DHCP server logs them at
   * debug, not one warning per request).
   */
  async #journal(record: DegradedRecord): Promise<void> {
    try {
      await this.#writer.append(record);
    } catch (error) {
      const code = fdShortageCode(error);
      if (code === null) throw error;
      this.counters.inc('journal_fd_exhausted');
      const now = this.#o.clock.monotonicMs();
      const why = `the degraded journal ${this.#path} cannot be opened for want of file descriptors (${code})`;
      if (this.#fdShort === null) {
        this.#fdShort = { since: now, refused: 0 };
        const { open, limit } = fdUsage();
        const held = open === null ? '' : ` (${open}${limit === null ? '' : ` of ${limit}`} open)`;
        this.#o.log.error({ event: 'dhcp.degraded.journal_fd_exhausted', path: this.#path, code, open, limit, err: errorMessage(error) },
          `out of file descriptors${held}: ${why}; degraded grants get no ACK until it can (clients retry), tried again at each; find what holds them (ls /proc/${process.pid}/fd) or raise LimitNOFILE`);
      }
      this.#fdShort.refused++;
      throw new AlreadySaidError('unavailable', `${why}; no ACK`);
    }
    if (this.#fdShort !== null) {
      const { since, refused } = this.#fdShort;
      this.#fdShort = null;
      this.#o.log.info({ event: 'dhcp.degraded.journal_fd_recovered', path: this.#path, refused, shortMs: Math.round(this.#o.clock.monotonicMs() - since) },
        `the degraded journal ${this.#path} is written again (file descriptors available); ${refused} grants got no ACK meanwhile`);
    }
  }

  /**
   * What degraded mode says of the VIP (services/vip/core.ts DegradedClaim), checked on every VIP
   * tick: `hold` while degraded with no quorum right now and no answer to the last ARP probe for the
   * VIP; `yield` after another MAC answered (a degraded member always yields); else `off`. The quorum
   * is read here, not only on this mode's 250 ms tick, so the VIP goes the moment a leader is heard.
   */
  vipClaim(): 'hold' | 'yield' | 'off' {
    const mono = this.#o.clock.monotonicMs();
    const quorum = this.#look(mono);
    if (this.#probe?.answered === true || (this.#yieldedAt !== null && mono - this.#yieldedAt < YIELD_TOLD_MS)) return 'yield';
    return this.#active && !quorum && this.#stalledAt === null ? 'hold' : 'off';
  }

  /**
   * What this member's report says of its degraded mode (cluster/member-status.ts `degradedVip`;
   * the VIP service adds whether it holds the VIP degraded): what a leader waits on before adding it.
   */
  vipReport(): Omit<DegradedVipReport, 'held'> {
    const mono = this.#o.clock.monotonicMs();
    this.#look(mono);
    return { active: this.#active, noQuorumMs: this.#noQuorumSince === null ? 0 : Math.round(mono - this.#noQuorumSince) };
  }

  /**
   * Why this member, as leader, does not add the VIP yet (null: it may): its partner may still hold
   * it degraded (cluster/degraded.ts handBackRefusal, HA.md 2.5: the hand-back has no instant with two holders).
   */
  leaderHeldBack(): string | null {
    const verdict = handBackVerdict(this.#handBackFacts(this.#o.clock.monotonicMs()));
    if (verdict.probe) this.#runHandBackProbe();
    return verdict.refusal;
  }

  /**
   * This member leads and holds the VIP: when its partner's silence would make a hand-back probe
   * the VIP first (silent past its report's good time, cut off both ways maybe), the probe is kept
   * fresh meanwhile, one starting HOLDING_PROBE_GAP_MS after the last ended. A lapse of its lease
   * (a stall, late answers under load) then adds the VIP back on that probe at once rather than
   * after a new one (about 1.2 s). A probe counts as before (ended within VIP_PROBE_FRESH_MS, nobody
   * answering), and one whose samples fell while this member held the VIP saw no other holder then.
   */
  leaderHolding(): void {
    if (this.#handBackProbing || this.#o.probeVip === null) return;
    const mono = this.#o.clock.monotonicMs();
    const last = this.#handBackProbe;
    if (last !== null && mono - last.endedMs < HOLDING_PROBE_GAP_MS) return;
    const facts = this.#handBackFacts(mono);
    // Asked for now, or once the last probe has aged (a lapse then would wait for a new one).
    if (handBackVerdict(facts).probe || handBackVerdict({ ...facts, nowMs: mono + VIP_PROBE_FRESH_MS }).probe) this.#runHandBackProbe();
  }

  #handBackFacts(mono: number): HandBackFacts {
    const name = this.#o.ownership.partnerOf(this.#o.self);
    const partner = this.#o.members()[name];
    // A one-way cluster link: the partner's Raft messages arrive, its reports do not; it lets go on this leader's report.
    const lead = this.#o.leadReportSent?.(name) ?? null;
    return {
      nowMs: mono, startedMs: this.#startedMono, reportEveryMs: REPORT_EVERY_MS, holdMs: DEGRADED_HOLD_MS,
      partner: partner === undefined ? null : { receivedMs: mono - partner.lastContactMs, degraded: partner.report.degradedVip ?? null },
      ...(this.#startArp === null ? {} : { partnerArp: this.#startArp }),
      partnerRaftMs: this.#o.inner.peerHeardAt?.(name) ?? null,
      leadReportMs: lead !== null && lead.term === this.#o.inner.status().term ? lead.monoMs : null,
      // Silence alone is no proof over a link cut both ways: the VIP must be silent on the LAN too.
      ...(this.#o.probeVip === null ? {} : { vipProbe: this.#handBackProbe }),
    };
  }

  /**
   * The leader's ARP probe of the VIP before a hand-back that rests on its partner's silence (no
   * report says it let go): another MAC answering holds it back. Back to back while asked for (a
   * probe takes about 1.2 s); a probe that fails (no arping) counts as silent, as before the probe
   * existed, and is said once a while.
   */
  #runHandBackProbe(): void {
    if (this.#handBackProbing || this.#o.probeVip === null) return;
    this.#handBackProbing = true;
    this.counters.inc('handback.probes');
    const done = (answered: boolean): void => {
      this.#handBackProbe = { endedMs: this.#o.clock.monotonicMs(), answered };
      this.#handBackProbing = false;
    };
    this.#o.probeVip().then((r) => {
      if (r === 'answered') {
        this.counters.inc('handback.vip-answered');
        if (this.#limiter.allow('handback-answered', this.#o.clock.monotonicMs())) {
          this.#o.log.warn({ event: 'dhcp.degraded.handback_vip_answers', partner: this.#o.ownership.partnerOf(this.#o.self) },
            `leading, but another MAC answers ARP for the VIP while ${this.#o.ownership.partnerOf(this.#o.self)} is silent on the cluster link: it holds the VIP degraded over a link cut both ways (or another device has the address); the VIP is not added until nobody answers`);
        }
      } else if (typeof r !== 'string' && this.#limiter.allow('handback-probe-failed', this.#o.clock.monotonicMs())) {
        this.#o.log.warn({ event: 'dhcp.degraded.handback_probe_failed', err: r.failed }, `the ARP probe of the VIP before adding it failed (${r.failed}): the VIP is added on the partner's silence alone`);
      }
      done(r === 'answered');
    }, (error: unknown) => {
      if (this.#limiter.allow('handback-probe-failed', this.#o.clock.monotonicMs())) {
        this.#o.log.warn({ event: 'dhcp.degraded.handback_probe_failed', err: errorMessage(error) }, `the ARP probe of the VIP before adding it failed (${errorMessage(error)}): the VIP is added on the partner's silence alone`);
      }
      done(false);
    });
  }

  /**
   * Every look at the mode (its tick, the VIP's, a report): a quorum seen restarts the count and
   * leaves degraded mode at once, so a member that heard a leader never claims the VIP again on a
   * tick that comes before this mode's own; a stall voids the last probe. Returns the quorum.
   */
  #look(mono: number): boolean {
    if (this.#lastLookMono !== null && mono - this.#lastLookMono >= STALL_MS) {
      this.#stalledAt = mono;
      this.#probe = null;
    }
    this.#lastLookMono = mono;
    const quorum = this.#quorum();
    if (!quorum && this.#active && this.#probe?.partnerAnswered === true && this.#probe.partnerPorts !== 'refused') {
      // Degraded with the partner's machine and lanha up on the LAN (its reports silent), and a newer
      // Raft term than at the entry: an election with the witness that the partner may win, adding
      // the VIP after its own probe, silent if this member's guard ran out in a stall meanwhile. Yield
      // as on its return (#partnerBack), the retake's wait running from this term.
      const term = this.#o.inner.status().term;
      if (term !== this.#yieldTerm) {
        this.#yieldedAt = mono;
        this.#yieldedToPartner = mono;
        this.#yieldTerm = term;
        this.#partnerBackSpent = false;
        this.counters.inc('partner-back.new-term');
        this.#leave(`a newer Raft term (${term}) while partner ${this.#o.ownership.partnerOf(this.#o.self)} answers on the LAN with its reports silent: it may be elected with the witness; a degraded member yields`);
      }
    }
    if (quorum) {
      const after = this.#noQuorumSince !== null;
      this.#noQuorumSince = null;
      this.#yieldedToPartner = null;
      this.#partnerBackSpent = false;
      this.#degradedStretch = false;
      if (this.#active) this.#leave('a quorum is back');
      if (after) this.#o.reportNow?.();
    } else {
      this.#noQuorumSince ??= mono;
    }
    return quorum;
  }

  /**
   * A quorum: this member leads or follows a leader, or the partner's own report, fresh, says it
   * leads (whatever its term: this member's own campaigns may have raised its term past the one the
   * leader keeps with its lease). The last is a one-way cluster link (this member
   * cannot dial the partner, so no heartbeat of its reaches here, while the partner's reports do):
   * the partner leads with the witness, so the witness's view has decided, and a degraded member
   * lets the VIP and its degraded mode go rather than wait for a heartbeat that cannot come (the
   * leader, not hearing this member's reports, adds the VIP once it has been silent 2.5 s).
   */
  #quorum(): boolean {
    const s = this.#o.inner.status();
    if (this.#o.inner.isLeader() || (s.role === 'follower' && s.leader !== null)) return true;
    const partnerName = this.#o.ownership.partnerOf(this.#o.self);
    const members = this.#o.members();
    const partner = members[partnerName];
    if (partner !== undefined && partner.lastContactMs < 2 * REPORT_EVERY_MS && partner.report.role === 'leader') return true;
    // The witness's fresh report naming a leader (not this member): a leader of its view, elected
    // with it, whose heartbeats and reports do not reach here (the cluster link between the two
    // servers cut both ways). This member never hears of that election otherwise (the witness
    // leaves its pre-votes unanswered while it hears the leader), and the leader, its ARP probe of
    // the VIP silent while this member holds nothing, adds the VIP about 1.2 s after its win.
    for (const [name, m] of Object.entries(members)) {
      if (name === partnerName || name === this.#o.self) continue;
      if (m.lastContactMs < 2 * REPORT_EVERY_MS && m.report.leader !== null && m.report.leader !== this.#o.self) return true;
    }
    return false;
  }

  /** What this member's report carries of its journal (null: nothing to merge). */
  journalReport(): JournalReport | null {
    const records = this.#leases.records;
    if (records.length === 0) return null;
    return { journal: this.#leases.journal, from: this.#leases.from, records: reportSlice(records, REPORT_RECORDS_MAX, REPORT_JOURNAL_BYTES) };
  }

  /** For `lanctl status`, the status page, doctor and metrics. */
  view(): DegradedView {
    const own = this.#o.ownership.halves.filter((h) => h.owner === this.#o.self).flatMap((h) => h.ranges.map((r) => `${formatIpv4(r.first)}-${formatIpv4(r.last)}`));
    return {
      enabled: true as const, active: this.#active, since: this.#activeSinceWall === null ? null : new Date(this.#activeSinceWall).toISOString(),
      mcltMs: this.#o.mcltMs, ownHalf: own, partner: this.#o.ownership.partnerOf(this.#o.self),
      promise: this.#active ? 'ACKed leases durable on this node only (its degraded journal), merged into the log when a quorum is back' : 'ACKed leases durable on a quorum',
      notDegradedBecause: this.#active ? null : this.#refusal,
      partnerAnswersArp: !this.#active && this.#probe?.partnerAnswered === true ? this.#o.probePartner?.address ?? null : null,
      journal: { path: this.#path, id: this.#leases.journal, pending: this.#leases.records.length },
      merged: Object.fromEntries([...this.#o.inner.fsm.degradedMerges()].map(([node, m]) => [node, { conflicts: m.conflicts, records: m.records, merges: m.merges }])),
      counters: this.counters.toJSON(),
    };
  }

  /** One step of the mode (every 250 ms): enter, leave, yield, merge, clear. */
  tick(): void {
    const mono = this.#o.clock.monotonicMs();
    const inner = this.#o.inner;
    const s = inner.status();
    const quorum = this.#look(mono);
    if (this.#probe !== null && mono - this.#probe.at > PROBE_VALID_MS) this.#probe = null;
    if (this.#active) {
      if (this.#probe?.answered === true) {
        this.#yieldedAt = mono;
        this.#leave('another node answers ARP for the VIP: a degraded member yields');
      } else if (this.#probe === null || mono - this.#probe.at >= ACTIVE_PROBE_GAP_MS) this.#runProbe(); // defend-or-yield: watch for another holder
    } else if (!quorum) {
      const partner = this.#o.members()[this.#o.ownership.partnerOf(this.#o.self)];
      const noQuorumMs = mono - this.#noQuorumSince!;
      const facts = {
        noQuorumMs,
        vipAnswered: this.#probe === null ? null : this.#probe.answered,
        partnerHeard: partner !== undefined && partner.lastContactMs < PARTNER_SILENT_MS,
        stateValid: s['rebuilding'] !== true && s['fresh'] !== true && (s['applyStopped'] ?? null) === null && s.role !== 'witness',
        partnerConfigDiffers: partner !== undefined && (partner.report.poolSplit ?? null) !== this.poolSplit,
        partnerArp: this.#probe?.partnerAnswered === true ? this.#o.probePartner?.address ?? null : null,
        partnerPorts: this.#probe?.partnerPorts ?? null,
      };
      this.#refusal = degradedRefusal(facts) ?? (this.#probe?.failed !== undefined ? `the VIP probe failed: ${this.#probe.failed}` : null);
      if (facts.partnerHeard) { this.#yieldedToPartner = null; this.#partnerBackSpent = false; }
      if (this.#refusal !== null && this.#noTaker(mono, s.term) && degradedRefusal({ ...facts, partnerArp: null }) === null) {
        // Yielded to the partner back on the LAN, and nobody took the VIP: it cannot lead. Hold on.
        this.#partnerBackSpent = true;
        this.#yieldedToPartner = null;
        this.counters.inc('partner-back.no-taker');
        this.#o.log.warn({ event: 'dhcp.degraded.partner_back_no_taker', partner: this.#o.ownership.partnerOf(this.#o.self), waitedMs: PARTNER_BACK_WAIT_MS },
          `yielded the VIP to ${this.#o.ownership.partnerOf(this.#o.self)} (back on the LAN, its reports silent), but nobody took it in ${PARTNER_BACK_WAIT_MS / 1000} s: it cannot lead; degraded again until a leader is heard`);
        this.#refusal = null;
      }
      if (this.#refusal === null) this.#enter();
      // Probed again before the answer ages out (a probe takes about 1.2 s), so the reason shown stays put.
      else if ((this.#probe === null || mono - this.#probe.at >= PROBE_VALID_MS - 1500) && noQuorumMs >= DEGRADED_AFTER_MS - 500 && facts.stateValid && !facts.partnerHeard && !facts.partnerConfigDiffers) this.#runProbe();
    } else {
      this.#refusal = 'the cluster has a quorum';
    }
    if (!this.#active) {
      this.#clearMerged();
      if (inner.isLeader()) this.#proposeMerges();
    }
  }

  #enter(): void {
    this.#active = true;
    this.#degradedStretch = true;
    this.#yieldTerm = this.#o.inner.status().term;
    this.#activeSinceWall = this.#o.clock.wallMs();
    this.#leases.rebase();
    this.counters.inc('entered');
    this.#o.log.warn({ event: 'dhcp.degraded.entered', partner: this.#o.ownership.partnerOf(this.#o.self), mcltMs: this.#o.mcltMs, pending: this.#leases.records.length },
      `DEGRADED: no quorum for ${DEGRADED_AFTER_MS / 1000} s, ${this.#o.ownership.partnerOf(this.#o.self)} silent, no one answers for the VIP: DHCP answers alone from this member's half of the pools, leases at most ${this.#o.mcltMs / 1000} s; ACKed leases durable on this node only until the journal is merged`);
  }

  #leave(why: string): void {
    this.#active = false;
    this.#activeSinceWall = null;
    this.#probe = null;
    this.counters.inc('left');
    this.#o.log.warn({ event: 'dhcp.degraded.left', reason: why, pending: this.#leases.records.length }, `degraded mode left: ${why}; ${this.#leases.records.length} journaled bindings to merge`);
  }

  #runProbe(): void {
    if (this.#probing) return;
    if (this.#o.probeVip === null) {
      this.#probe = { at: this.#o.clock.monotonicMs(), answered: false };
      this.#stalledAt = null;
      return;
    }
    this.#probing = true;
    const started = this.#o.clock.monotonicMs();
    // The partner's address too (HA.md 2.5: "partner's node IP silent on the LAN"): before entering,
    // and while degraded, where it says the partner's machine is back (#partnerBack).
    const partner = this.#o.probePartner?.probe().catch(() => 'silent' as const);
    // And its ports: reset on both, its machine is up with no lanha on it (HA.md 2.5: not a cut link while it serves).
    const ports = this.#ports();
    Promise.all([this.#o.probeVip(), partner, ports]).then(([r, p, partnerPorts]) => {
      const partnerAnswered = p === 'answered';
      this.#probe = typeof r === 'string' ? { at: this.#o.clock.monotonicMs(), started, answered: r === 'answered', partnerAnswered, partnerPorts } : { at: this.#o.clock.monotonicMs(), started, answered: null, failed: r.failed, partnerAnswered, partnerPorts };
      if (!partnerAnswered || partnerPorts === 'refused') { this.#yieldedToPartner = null; this.#partnerBackSpent = false; } // its machine or its lanha gone again
      if (this.#active) {
        // Before the VIP's next tick can claim on this probe.
        if (partnerAnswered && partnerPorts !== 'refused') this.#partnerBack(started, partnerPorts);
        return;
      }
      if (partnerAnswered && partnerPorts !== 'refused') this.#partnerBackIdle(started);
      if (partnerAnswered && partnerPorts === 'refused' && this.#limiter.allow('partner-lanha-down', this.#o.clock.monotonicMs())) {
        this.#o.log.warn({ event: 'dhcp.degraded.partner_lanha_down', partner: this.#o.ownership.partnerOf(this.#o.self), address: this.#o.probePartner?.address },
          `partner ${this.#o.probePartner?.address} answers ARP but its cluster port and its DNS (or NTP) port refuse connections: its machine is up, its lanha down (not a cut link), so it does not keep this member out of degraded mode`);
      } else if (partnerAnswered && this.#limiter.allow('partner-arp', this.#o.clock.monotonicMs())) {
        this.#o.log.warn({ event: 'dhcp.degraded.partner_answers', partner: this.#o.ownership.partnerOf(this.#o.self), address: this.#o.probePartner?.address },
          `not going degraded: partner ${this.#o.probePartner?.address} answers ARP while its reports are silent: a cluster-link problem (or its lanha is down), not a dead partner`);
      }
    }, (error: unknown) => {
      this.#probe = { at: this.#o.clock.monotonicMs(), answered: null, failed: errorMessage(error) };
    }).finally(() => {
      this.#probing = false;
      // A probe that began before a stall says nothing of what happened in it.
      if (this.#stalledAt !== null && started < this.#stalledAt) this.#probe = null;
      else if (this.#probe !== null && this.#probe.answered !== true) this.#stalledAt = null;
    });
  }

  /**
   * While degraded, the partner's machine answers ARP again and its ports do not all reset (its
   * lanha runs, or a firewall drops): if no report of it came since this probe started, the cluster
   * link between the two is what fails, and the partner may lead with the witness and add the VIP
   * (its own probe of the VIP sees this member's and waits). A degraded member yields: it leaves
   * degraded mode and lets the VIP go, as it would not have entered with the partner answering.
   */
  #partnerBack(probeStarted: number, ports: PartnerPorts | null): void {
    const mono = this.#o.clock.monotonicMs();
    const name = this.#o.ownership.partnerOf(this.#o.self);
    const partner = this.#o.members()[name];
    if (partner !== undefined && mono - partner.lastContactMs >= probeStarted) {
      // It reports: the cluster link works, a leader is heard there; a later cut may be yielded to again.
      this.#partnerBackSpent = false;
      return;
    }
    if (this.#partnerBackSpent) return; // yielded once already and nobody took the VIP: held until a leader is heard
    this.#yieldedAt = mono;
    this.#yieldedToPartner = mono;
    this.#yieldTerm = this.#o.inner.status().term;
    this.counters.inc('partner-back');
    this.#leave(`partner ${name} (${this.#o.probePartner?.address}) answers ARP again and its ports ${ports === null ? 'were not knocked' : ports === 'open' ? 'accept' : 'do not answer'}, while its reports are silent: the cluster link is cut, and it may lead with the witness; a degraded member yields`);
  }

  /**
   * Not degraded now but degraded in this stretch without a quorum (it left when the partner's
   * lanha was gone a moment: its ports reset), and the partner's machine answers again with its
   * reports silent: the same wait for a taker as after a yield (#partnerBack). Without it a partner
   * whose lanha flapped kept this member out for as long as the cut lasted ("a cluster-link
   * problem"), with nobody holding the VIP when the partner could not lead.
   */
  #partnerBackIdle(probeStarted: number): void {
    if (!this.#degradedStretch || this.#yieldedToPartner !== null || this.#partnerBackSpent) return;
    const partner = this.#o.members()[this.#o.ownership.partnerOf(this.#o.self)];
    const mono = this.#o.clock.monotonicMs();
    if (partner !== undefined && mono - partner.lastContactMs >= probeStarted) return;
    this.#yieldedToPartner = mono;
    this.#yieldTerm = this.#o.inner.status().term;
  }

  /**
   * Yielded to the partner back on the LAN PARTNER_BACK_WAIT_MS ago, and a probe started since found
   * the VIP unanswered. A newer Raft term since then (this member learns it from the witness's
   * answers to its pre-votes) is an election the partner may be winning with the witness: its own
   * probe of the VIP, silent while this member holds nothing, lets it add the VIP about 1.2 s after
   * its win, inside the 1.2 s this member's probe takes to end, so both would hold it. The wait
   * starts again from the term's change: the retake comes only after 6 s without an election.
   */
  #noTaker(mono: number, term: number): boolean {
    if (this.#yieldedToPartner !== null && term !== this.#yieldTerm) {
      this.#yieldedToPartner = mono;
      this.#yieldTerm = term;
      this.counters.inc('partner-back.new-term');
    }
    const y = this.#yieldedToPartner;
    const p = this.#probe;
    return y !== null && mono - y >= PARTNER_BACK_WAIT_MS && p !== null && p.answered === false && p.started !== undefined && p.started >= y + YIELD_TOLD_MS;
  }

  /** The partner's ports (PartnerPorts); null: not probed (no port prober, or it failed). */
  #ports(): Promise<PartnerPorts | null> {
    const ports = this.#o.probePartner?.ports;
    return ports === undefined ? Promise.resolve(null) : ports().catch(() => null);
  }

  /** The partner's last reported applied index (0: never heard since this process started). */
  #partnerApplied(): number {
    return this.#o.members()[this.#o.ownership.partnerOf(this.#o.self)]?.report.appliedIndex ?? 0;
  }

  /** An address a binding of this member's own journal holds, not merged yet. */
  #pendingHolds(ip: Ipv4): boolean {
    return this.#leases.records.length > 0 && this.#leases.overlayHolds(ip, null, this.logTimeMs());
  }

  /** The leader merges every journal it knows of: its own, and those other members report. */
  #proposeMerges(): void {
    const own = this.#leases.mergeCommand();
    const wanted: Array<Extract<Command, { type: 'lease.merge' }>> = own === null ? [] : [{ ...own, records: own.records.slice(0, REPORT_RECORDS_MAX), upTo: own.from + Math.min(own.records.length, REPORT_RECORDS_MAX) - 1 }];
    for (const [name, view] of Object.entries(this.#o.members())) {
      const j = view.report.degradedJournal;
      if (j === undefined || j === null || j.records.length === 0) continue;
      wanted.push({ type: 'lease.merge', node: name, journal: j.journal, from: j.from, upTo: j.from + j.records.length - 1, records: j.records });
    }
    for (const merge of wanted) {
      const done = this.#o.inner.fsm.degradedMerged(merge.node);
      if ((done !== undefined && done.journal === merge.journal && done.upTo >= merge.upTo) || this.#merging.has(merge.node)) continue;
      this.#merging.add(merge.node);
      this.#o.inner.propose(merge).then(() => {
        this.counters.inc('merges.proposed');
      }, (error: unknown) => {
        if (this.#limiter.allow(`merge ${merge.node}`, this.#o.clock.monotonicMs())) {
          this.#o.log.warn({ event: 'dhcp.degraded.merge_waits', node: merge.node, records: merge.records.length, err: errorMessage(error) }, `${merge.node}'s degraded journal (${merge.records.length} bindings) is not merged yet: ${errorMessage(error)}`);
        }
      }).finally(() => this.#merging.delete(merge.node));
    }
  }

  /**
   * A journal grown long with superseded records (renewals while alone) is compacted in place: the
   * newest record per (ip, mac) under a new journal id (records renumbered: the merge starts over
   * with it, and merging a record twice changes nothing), written as a new file, fsync'd, renamed
   * over the old one, the directory fsync'd. Grants wait meanwhile; a failure leaves the old file.
   */
  #maybeCompact(): void {
    const records = this.#leases.records;
    if (this.#compacting !== null || this.#clearing || records.length < this.#compactAt) return;
    const superseded = supersededCount(records);
    this.#compactAt = Math.max(this.#o.compactMinRecords ?? COMPACT_MIN_RECORDS, 2 * (records.length - superseded));
    if (superseded * 2 < records.length) return;
    const journal = newJournalId();
    let kept: DegradedRecord[] = [];
    let before = 0;
    this.#compacting = this.#writer.replace(() => {
      before = this.#leases.records.length;
      kept = compactRecords(this.#leases.records);
      return { journal, from: 1, records: kept };
    }).then(() => {
      this.#leases.load(journal, 1, kept);
      this.counters.inc('compacted');
      this.#o.log.info({ event: 'dhcp.degraded.journal_compacted', path: this.#path, journal, before, after: kept.length },
        `degraded journal compacted: ${before} records -> ${kept.length} (the newest per client and address)`);
    }, (error: unknown) => {
      this.counters.inc('compact.failed');
      this.#o.log.error({ event: 'dhcp.degraded.journal_compact_failed', path: this.#path, err: errorMessage(error) }, `the degraded journal could not be compacted (it stays as it was): ${errorMessage(error)}`);
    }).finally(() => { this.#compacting = null; });
  }

  /** The log merged (part of) this member's journal: those records leave the journal file. */
  #clearMerged(): void {
    const done = this.#o.inner.fsm.degradedMerged(this.#o.self);
    // Not while a compaction renumbers the journal (a merge of the old numbering changes nothing then).
    if (this.#clearing || this.#compacting !== null || done === undefined || done.journal !== this.#leases.journal || done.upTo < this.#leases.from || this.#leases.records.length === 0) return;
    this.#clearing = true;
    this.#leases.merged(done.journal, done.upTo);
    const left = [...this.#leases.records];
    void this.#writer.reopen()
      .then(() => rewriteJournal(this.#path, this.#leases.journal, this.#leases.from, left))
      .then(() => this.#o.log.info({ event: 'dhcp.degraded.journal_cleared', upTo: done.upTo, left: left.length }, `degraded journal merged up to record ${done.upTo}; ${left.length} left`),
        (error: unknown) => this.#o.log.error({ event: 'dhcp.degraded.journal_failed', path: this.#path, err: errorMessage(error) }, `the degraded journal could not be rewritten after its merge: ${errorMessage(error)}`))
      .finally(() => { this.#clearing = false; });
  }
}

function newJournalId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
