import { gunzipSync, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import { decodeCommand, decodeCommandJson, encodeCommand, type Command, type DecodeCommandResult } from '../commands.js';
import { APPLY_LEVEL, unknownEntryError } from '../apply-level.js';
import { Fsm, type AppliedEntry, type ProposalTiming } from '../fsm.js';
import { LogClock } from '../log-time.js';
import { ConflictError, NotLeaderError, type StateLog, type StateLogStatus } from '../state-log.js';
import { decodeFsmSnapshot, encodeFsmSnapshot, type RaftTimeline } from '../raft-state-log.js';
import type { MemberStatusChannel } from '../member-status.js';
import { EtcdMemberFeed } from './member-feed.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import { EtcdClient, EtcdError, isAuthError, isLeaseNotFound, prefixEnd, type Compare, type EndpointHealth, type KeyValue, type TxnOp, type TxnResult, type Watch, type WatchEvent } from './client.js';

// The StateLog on an etcd v3 cluster (`cluster.backend: etcd`). Keys under the site's prefix P:
//
//   P leader              the election: value = node name, attached to the holder's etcd lease;
//                         its create revision is the holder's epoch ("term") and fencing token
//   P log/<epoch>-<seq>   one batch record per txn: the JSON array of the commands the txn carries
//                         (each one encodeCommand's entry, in the order they apply), written by the
//                         holder in a txn that compares P leader's create revision with its epoch
//                         (a deposed holder's write fails) and the key's create revision with 0 (a
//                         retried write cannot apply twice). A value that is not an array is one
//                         command (what versions before batch records wrote).
//   A <a.b.c.d>           A = the prefix without its "/" + "-addr/", beside the prefix so the watch
//                         and the load never carry them: one per address a lease command (grant,
//                         release, decline, expire) touched, put in that command's txn (value: the
//                         record's key); the txn checks the key's mod revision is no later than the
//                         revision the proposer had applied when it decided, so a command decided on
//                         an address that another command changed meanwhile fails (ConflictError,
//                         nothing written): never two clients ACKed one address
//   P handoff             during a planned failover (`lanctl failover --to NODE`): NODE's name, on a
//                         lease of two TTLs, written by the resigning holder in the txn that deletes
//                         P leader; while it lives only NODE campaigns (its campaign txn deletes it),
//                         so with several servers the named one wins; a dead NODE only delays the rest
//   P snapshot            gzip'd Fsm snapshot at some revision; log keys up to it are then deleted
//
// Every member applies log keys to the same fsm.ts in etcd revision order (the revision is the
// log index): first a range of the whole prefix at one revision (snapshot + the log keys after it),
// then a watch from the next revision. A member behind etcd's compaction point reloads that way.
// Leadership is valid only until a local deadline computed from the *send* time of the last
// keep-alive etcd answered, so a cut-off holder stops before its lease can expire in etcd and
// another server win; a new holder serves only once it has applied everything up to its win.
// Durability: propose() resolves after etcd answered the txn (etcd fsyncs on a quorum first) and
// the entry was applied here.

export interface EtcdStateLogOptions {
  id: string;
  client: EtcdClient;
  /** Key prefix of this site, ending in "/". */
  prefix: string;
  clock: Clock;
  log: Logger;
  /** The leadership lease's TTL in etcd (whole seconds). */
  leaseTtlMs: number;
  /** Campaign and serve? false = follow only. */
  serves?: boolean;
  /** Snapshot after this many entries applied since the last one (leader only). */
  snapshotEntries?: number;
  proposeTimeoutMs?: number;
  /** After a resign, do not campaign for this long (another server takes it). */
  resignHoldOffMs?: number;
  /** How often the watch is checked against a range read (a stalled watch is noticed within two of these). */
  watchCheckMs?: number;
  /**
   * A proposal is refused at once while the oldest one queued has waited this long (default 1000):
   * etcd is not keeping up, and piling on would only make every answer late (a DHCP client
   * retries; an ACK seconds late is worth less than a clean no-answer).
   */
  queueMaxWaitMs?: number;
}

interface Pending {
  key: string;
  command: Command;
  at: number;
  /** The leadership epoch it was stamped under (its key's first part). */
  epoch: number;
  /** Monotonic times: queued, its txn sent, etcd's answer (0 until then). */
  queuedAt: number;
  sentAt: number;
  answeredAt: number;
  /** The encoded entry (the log key's value). */
  value: Uint8Array;
  /** What it depends on: its address's key, and the revision applied here when it was decided (the key must not have changed after it). */
  addrKey: string | null;
  decidedRev: number;
  /** The txn's revision once etcd answered. */
  revision: number | null;
  resolve: (entry: AppliedEntry) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One txn carries the commands queued while the previous one was in flight, as one batch record,
 * up to etcd's limits: --max-txn-ops (128 by default, for the compares, the puts and the failure
 * ranges each: the fence and the record's key, plus one address key per lease command) and
 * --max-request-bytes (1.5 MiB; the JSON gateway's base64 and the rest of the request fit in the
 * margin). TXN_MAX_COMMANDS bounds what one record's apply costs a member.
 */
const TXN_MAX_ADDRS = 120;
const TXN_MAX_BYTES = 768 * 1024;
const TXN_MAX_COMMANDS = 1024;

/** The address a lease command binds, frees or quarantines (what its txn must compare); null for other commands. */
function addrOf(command: Command): number | null {
  switch (command.type) {
    case 'lease.grant': case 'lease.release': case 'lease.decline': case 'lease.expire': return command.ip;
    default: return null;
  }
}

/** A batch record's value: the entries as one JSON array, joined as bytes (each is already JSON). */
function encodeRecord(values: readonly Uint8Array[]): Uint8Array {
  let length = 2 + Math.max(0, values.length - 1);
  for (const v of values) length += v.length;
  const out = new Uint8Array(length);
  let at = 0;
  out[at++] = 0x5b; // [
  values.forEach((v, i) => {
    if (i > 0) out[at++] = 0x2c; // ,
    out.set(v, at);
    at += v.length;
  });
  out[at] = 0x5d; // ]
  return out;
}

/** A log key's entries: a batch record's, in order, or the one command an older version wrote. Never throws. */
export function decodeRecord(value: Uint8Array): DecodeCommandResult[] {
  let i = 0;
  while (i < value.length && (value[i] === 0x20 || value[i] === 0x0a || value[i] === 0x0d || value[i] === 0x09)) i++;
  if (value[i] !== 0x5b) return [decodeCommand(value)];
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch {
    return [{ ok: false, error: 'batch record is not UTF-8 JSON' }];
  }
  if (!Array.isArray(raw) || raw.length === 0) return [{ ok: false, error: 'batch record is not a list of entries' }];
  return raw.map((entry) => decodeCommandJson(entry));
}

const gzipAsync = promisify(gzip);
const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** etcd's default --max-txn-ops is 128. */
const DELETE_BATCH = 128;

/** How long a watch keeps off the endpoint through which it last stalled (when there is another). */
const STALLED_ENDPOINT_AVOID_MS = 60_000;

export class EtcdStateLog implements StateLog {
  readonly fsm = new Fsm();
  #o: EtcdStateLogOptions;
  #client: EtcdClient;
  #p: { leader: string; handoff: string; log: string; addr: string; legacyAddr: string; snapshot: string; end: string };
  #logClock: LogClock;
  #limiter = new LogLimiter();
  #closed = false;
  /** Why applying stopped at an entry of a newer lanha (null: it did not). */
  #applyStopped: string | null = null;
  /** StateLog.setProposalCheck: refuses a command some member cannot apply (cluster/apply-level.ts). */
  #proposalCheck: ((command: Command) => string | null) | undefined;
  /** The highest etcd revision whose events are all applied here. */
  #revision = 0;
  #watch: Watch | null = null;
  /** The endpoint the current watch streams from. */
  #watchEndpoint = '';
  #watchCheck: NodeJS.Timeout | null = null;
  #checking = false;
  /** The etcd revision the previous watch check saw: whatever was under the prefix then, the watch must have delivered by the next check. */
  #checkedRevision = 0;
  /** What the watch had delivered at the previous check. */
  #seenAtLastCheck = 0;
  /** Counts the watches started (and reloads): a check judges only the watch that ran when its baseline was read. */
  #watchSerial = 0;
  /** The watch serial #checkedRevision was read under. */
  #checkedSerial = 0;
  /** Set while a reload (the range read of the whole prefix) runs: the catch-up itself, never a stall. */
  #loading = false;
  /** Set while the watch is known to have missed committed keys (cleared once they are applied). */
  #stale: { sinceMs: number; upTo: number; endpoint: string } | null = null;
  #lastStall: { at: string; endpoint: string; appliedRevision: number; missedRevision: number } | null = null;
  /** When the last stall was seen (monotonic ms): the watch keeps off its endpoint for a while. */
  #stallAtMs = 0;
  /** Stalls seen per endpoint (status: which members' watches stalled, not only the last). */
  #stallsByEndpoint = new Map<string, number>();
  #watchLoop: Promise<void> | null = null;
  #leaderLoop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  /** The election as last seen: holder name and epoch (create revision), null when vacant. */
  #holder: { name: string; epoch: number; lease: string } | null = null;
  /** Our own leadership: the lease, its local deadline (monotonic), our epoch once won. */
  #lease: { id: string; ttlS: number } | null = null;
  #deadline = 0;
  /** Lease renewals sent and not answered yet. */
  #renewals = 0;
  #epoch: number | null = null;
  #seq = 0;
  #recordSeq = 0;
  /** Batch records sent and not yet applied here: record key -> its commands, in record order. */
  #records = new Map<string, Pending[]>();
  #holdOffUntil = 0;
  /** The node a planned failover named (P handoff), while that key lives. */
  #handoff: string | null = null;
  #behindSince: number | null = null;
  #wasLeading = false;
  #pending = new Map<string, Pending>();
  /** Proposed, not yet sent; #flushing while a txn is in flight. */
  #queue: Pending[] = [];
  #flushing = false;
  /** The revision whose log keys the current #onEvents call is applying (several share one txn). */
  #openRevision = 0;
  /** Live log keys in revision order (what a snapshot lets the leader delete): revision and command count. */
  #logKeys = new Map<string, { revision: number; entries: number }>();
  /** Commands in the live log keys (what snapshotEntries counts). */
  #logEntries = 0;
  #snapshotIndex = 0;
  #snapshotting = false;
  #stats = { shed: 0, staleWatches: 0, txns: 0, txnCommands: 0, conflicts: 0, applied: 0, skipped: 0, foreign: 0, reloads: 0, watchRestarts: 0, campaigns: 0, keepAliveFailures: 0, snapshots: 0 };
  #lastError: string | null = null;
  #health: EndpointHealth[] = [];
  #memberFeed: EtcdMemberFeed | null = null;
  #timeline: RaftTimeline = { heardLeaderAt: null, timeoutNowAt: null, preCandidateAt: null, candidateAt: null, leaderAt: null };

  private constructor(o: EtcdStateLogOptions) {
    this.#o = o;
    this.#client = o.client;
    this.#p = {
      leader: `${o.prefix}leader`, handoff: `${o.prefix}handoff`, log: `${o.prefix}log/`, snapshot: `${o.prefix}snapshot`, end: prefixEnd(o.prefix),
      addr: `${o.prefix.replace(/\/+$/, '')}-addr/`,
      legacyAddr: `${o.prefix}addr/`, // where versions before batch records kept the address keys (under the prefix)
    };
    this.#logClock = new LogClock(o.clock, o.log, 'etcd.clock_jump');
  }

  /** Loads the state from etcd (fails naming the endpoints when none answers) and starts following it. */
  static async open(o: EtcdStateLogOptions): Promise<EtcdStateLog> {
    const self = new EtcdStateLog(o);
    try {
      await self.#load();
    } catch (error) {
      self.#client.close();
      throw new LanhaError('unavailable', `cannot read the state from etcd (${o.client.endpoints.join(', ')}, prefix ${o.prefix}): ${errorMessage(error)}`);
    }
    self.#watchLoop = self.#follow();
    self.#watchCheck = setInterval(() => void self.#checkWatch(), o.watchCheckMs ?? 1000);
    self.#watchCheck.unref();
    if (o.serves !== false) self.#leaderLoop = self.#lead();
    o.log.info({ event: 'etcd.opened', endpoints: o.client.endpoints, prefix: o.prefix, revision: self.#revision, applied: self.fsm.appliedIndex, snapshot: self.#snapshotIndex },
      `state loaded from etcd at revision ${self.#revision}`);
    return self;
  }

  isLeader(): boolean {
    return !this.#closed && this.#applyStopped === null && this.#o.serves !== false && this.#epoch !== null && this.#holder?.epoch === this.#epoch
      && this.#o.clock.monotonicMs() < this.#deadline && this.#revision >= this.#epoch;
  }

  /** Milliseconds this node may still act as leader (0 when isLeader() is false). */
  leaseRemainingMs(): number {
    return this.isLeader() ? Math.max(0, this.#deadline - this.#o.clock.monotonicMs()) : 0;
  }

  timeline(): RaftTimeline {
    return { ...this.#timeline };
  }

  /** Members' reports about themselves travel through etcd too (cluster/etcd/member-feed.ts). */
  attachMemberStatus(channel: MemberStatusChannel): void {
    if (this.#closed || this.#memberFeed !== null) return;
    this.#memberFeed = new EtcdMemberFeed(this.#client, this.#o.prefix, this.#o.id, channel, this.#o.log);
    this.#memberFeed.start();
  }

  /**
   * Queues the command; it goes to etcd in the next txn (several commands queued while one txn is
   * in flight share the next one). Resolves once it is applied here; rejects with NotLeaderError,
   * ConflictError (its address changed since this node decided on it: nothing written), or
   * `unavailable`.
   */
  logTimeMs(): number {
    return this.#logClock.now(this.#epoch ?? -1, this.fsm.lastAt);
  }

  setProposalCheck(check: (command: Command) => string | null): void {
    this.#proposalCheck = check;
  }

  proposalRefusal(command: Command): string | null {
    return this.#proposalCheck?.(command) ?? null;
  }

  async propose(command: Command): Promise<AppliedEntry> {
    if (this.#closed) throw new LanhaError('unavailable', 'the state log is closed');
    const refused = this.#proposalCheck?.(command) ?? null;
    if (refused !== null) throw new LanhaError('unavailable', refused);
    const epoch = this.#epoch;
    if (!this.isLeader() || epoch === null) throw new NotLeaderError(this.#holder && this.#holder.name !== this.#o.id ? this.#holder.name : null);
    const now = this.#o.clock.monotonicMs();
    const oldest = this.#queue.find((q) => this.#pending.get(q.key) === q);
    const maxWaitMs = this.#o.queueMaxWaitMs ?? 1000;
    if (oldest !== undefined && now - oldest.queuedAt > maxWaitMs) {
      this.#stats.shed++;
      throw new LanhaError('unavailable', `etcd is not keeping up: ${this.#queue.length} commands queued, the oldest for ${Math.round(now - oldest.queuedAt)} ms; refused, try again`);
    }
    const at = this.#logClock.stamp(epoch, this.fsm.lastAt);
    const key = `${epoch}-${++this.#seq}`; // the pending map's; its batch record's key is made when it is sent
    const timeoutMs = this.#o.proposeTimeoutMs ?? 5000;
    // What the command depends on: its address, as of everything applied here.
    const addr = addrOf(command);
    const addrKey = addr === null ? null : `${this.#p.addr}${formatIpv4(addr)}`;
    const decidedRev = this.#revision;
    const value = encodeCommand({ at, by: this.#o.id, command });
    const applied = new Promise<AppliedEntry>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        reject(new LanhaError('unavailable', `entry ${key} was not applied within ${timeoutMs} ms (etcd unreachable or behind?)`));
      }, timeoutMs);
      timer.unref();
      const p: Pending = { key, command, at, epoch, queuedAt: now, sentAt: 0, answeredAt: 0, value, addrKey, decidedRev, revision: null, resolve, reject, timer };
      this.#pending.set(key, p);
      this.#queue.push(p);
    });
    void this.#flush();
    return applied;
  }

  /** Sends the queue to etcd, one txn at a time, until it is empty. */
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#takeBatch();
        if (batch.length > 0) await this.#commitBatch(batch);
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * The next txn's commands, in queue order: one epoch, within etcd's limits, and one command per
   * address (a second one waits for the next txn, where it compares against the first's revision).
   */
  #takeBatch(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const addrs = new Set<string>();
    let bytes = 0;
    for (const p of this.#queue) {
      if (this.#pending.get(p.key) !== p) continue; // timed out while queued
      const fits = batch.length === 0 || (batch.length < TXN_MAX_COMMANDS && (p.addrKey === null || addrs.size < TXN_MAX_ADDRS)
        && bytes + p.value.length <= TXN_MAX_BYTES && p.epoch === batch[0]!.epoch);
      if (!fits || (p.addrKey !== null && addrs.has(p.addrKey))) {
        rest.push(p);
        continue;
      }
      batch.push(p);
      bytes += p.value.length + 1;
      if (p.addrKey !== null) addrs.add(p.addrKey);
    }
    this.#queue = rest;
    return batch; // in the order proposed: the order every member applies them in
  }

  #fail(p: Pending, error: Error): void {
    if (this.#pending.get(p.key) !== p) return;
    clearTimeout(p.timer);
    this.#pending.delete(p.key);
    p.reject(error);
  }

  /**
   * One txn for the batch, its commands in one batch record: the election fence, the record's key
   * absent (a retry after a lost answer cannot write twice), and each command's address key not
   * changed after the revision it was decided on. When a compare fails, only the commands whose
   * address moved on are refused; the others go back to the head of the queue.
   */
  async #commitBatch(batch: Pending[]): Promise<void> {
    const epoch = batch[0]!.epoch;
    const holderName = (): string | null => (this.#holder && this.#holder.name !== this.#o.id ? this.#holder.name : null);
    if (this.#epoch !== epoch) {
      for (const p of batch) this.#fail(p, new NotLeaderError(holderName()));
      return;
    }
    const record = `${this.#p.log}${pad(epoch, 16)}-${pad(++this.#recordSeq, 12)}`;
    const dependent = batch.filter((p): p is Pending & { addrKey: string } => p.addrKey !== null);
    const recordKeyBytes = new TextEncoder().encode(record);
    let r: TxnResult;
    const sentAt = this.#o.clock.monotonicMs();
    for (const p of batch) p.sentAt = sentAt;
    this.#records.set(record, batch);
    try {
      this.#stats.txns++;
      this.#stats.txnCommands += batch.length;
      r = await this.#client.txn(
        [
          { key: this.#p.leader, target: 'CREATE', result: 'EQUAL', createRevision: epoch },
          { key: record, target: 'CREATE', result: 'EQUAL', createRevision: 0 },
          ...dependent.map((p): Compare => ({ key: p.addrKey, target: 'MOD', result: 'LESS', modRevision: p.decidedRev + 1 })),
        ],
        [
          { put: { key: record, value: encodeRecord(batch.map((p) => p.value)) } },
          ...dependent.map((p): TxnOp => ({ put: { key: p.addrKey, value: recordKeyBytes } })),
        ],
        [{ range: { key: this.#p.leader } }, { range: { key: record } }, ...dependent.map((p): TxnOp => ({ range: { key: p.addrKey } }))],
      );
    } catch (error) {
      this.#records.delete(record);
      for (const p of batch) this.#fail(p, new LanhaError('unavailable', `could not commit to etcd: ${errorMessage(error)}`));
      return;
    }
    const committed = r.succeeded ? r.revision : r.ranges[1]?.[0]?.modRevision ?? null; // a retry after a lost answer finds its own keys
    if (committed === null) this.#records.delete(record);
    if (committed !== null) {
      const answeredAt = this.#o.clock.monotonicMs();
      for (const p of batch) { p.revision = committed; p.answeredAt = answeredAt; }
      this.#settlePending();
      return;
    }
    const holder = r.ranges[0]?.[0];
    if (holder === undefined || holder.createRevision !== epoch) {
      const name = holder ? Buffer.from(holder.value).toString('utf8') : null;
      this.#lostLeadership('the election key is no longer ours', name);
      for (const p of batch) this.#fail(p, new NotLeaderError(name));
      return;
    }
    // Still ours: some addresses moved on under their commands. Those are refused (once this node
    // caught up to the change, so the client's retry is decided on it); the rest try again.
    const moved = new Map<Pending, number>();
    dependent.forEach((p, i) => {
      const now = r.ranges[2 + i]?.[0]?.modRevision ?? 0;
      if (now > p.decidedRev) moved.set(p, now);
    });
    if (moved.size === 0) { // a compare failed, yet none shows why: refuse rather than loop
      for (const p of batch) this.#fail(p, new LanhaError('unavailable', `etcd refused txn ${record} without a visible conflict; try again`));
      return;
    }
    for (const [p, now] of moved) void this.#conflict(p.addrKey!, p.decidedRev, now).then((error) => this.#fail(p, error));
    this.#queue.unshift(...batch.filter((p) => !moved.has(p)));
  }

  /** Waits (briefly) until the change that beat a command is applied here; the error to refuse it with. */
  async #conflict(addrKey: string, decidedRev: number, now: number): Promise<ConflictError> {
    this.#stats.conflicts++;
    const deadline = this.#o.clock.monotonicMs() + 1000;
    while (this.#revision < now && this.#o.clock.monotonicMs() < deadline && !this.#closed) await sleep(5);
    const address = addrKey.slice(this.#p.addr.length);
    return new ConflictError(`address ${address} changed in etcd (revision ${now}) after this node decided on it (at revision ${decidedRev}): command refused, nothing written`);
  }

  status(): StateLogStatus {
    const leader = this.#holder?.name ?? null;
    const self = this.#o.id;
    return {
      mode: 'cluster',
      backend: 'etcd',
      role: this.isLeader() ? 'leader' : this.#o.serves === false ? 'witness' : leader === null ? 'candidate' : 'follower',
      leader,
      term: this.#holder?.epoch ?? 0,
      commitIndex: this.#revision,
      appliedIndex: this.fsm.appliedIndex,
      lastIndex: this.#revision,
      snapshotIndex: this.#snapshotIndex,
      leaseValid: this.isLeader(),
      leaseRemainingMs: Math.round(this.leaseRemainingMs()),
      applyStopped: this.#applyStopped,
      etcd: {
        endpoints: this.#client.endpoints,
        endpoint: this.#client.endpoint,
        health: this.#health,
        prefix: this.#o.prefix,
        revision: this.#revision,
        holder: this.#holder === null ? null : { name: this.#holder.name, epoch: this.#holder.epoch, self: this.#holder.name === self },
        handoff: this.#handoff,
        leaseTtlS: this.#lease?.ttlS ?? Math.round(this.#o.leaseTtlMs / 1000),
        lastError: this.#lastError,
        watch: {
          endpoint: this.#watchEndpoint,
          stale: this.#stale !== null,
          staleForMs: this.#stale === null ? 0 : Math.round(this.#o.clock.monotonicMs() - this.#stale.sinceMs),
          lastStall: this.#lastStall,
          stalls: Object.fromEntries(this.#stallsByEndpoint),
        },
        ...this.#stats,
      },
      // Known or null, never worked out here: status() is asked often (Fsm.hashSoon).
      stateHash: this.fsm.hashSoon(),
    };
  }

  /** Asks every endpoint for its status now (status() shows the last answers). */
  async checkHealth(): Promise<EndpointHealth[]> {
    this.#health = await this.#client.health();
    return this.#health;
  }

  /**
   * Planned failover: give the election up (delete our key, revoke the lease), naming `to` in
   * P handoff so that only it campaigns (the others wait until it wins or the key's two-TTL lease
   * runs out), and stay out of it ourselves for resignHoldOffMs.
   */
  transferLeadership(to: string): boolean {
    const epoch = this.#epoch;
    if (epoch === null) return false;
    this.#holdOffUntil = this.#o.clock.monotonicMs() + (this.#o.resignHoldOffMs ?? 2 * this.#o.leaseTtlMs);
    this.#epoch = null;
    this.#deadline = 0;
    void this.#resign(epoch, to);
    return true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const epoch = this.#epoch;
    this.#closed = true;
    this.#epoch = null;
    this.#wake?.();
    if (this.#watchCheck !== null) clearInterval(this.#watchCheck);
    if (epoch !== null) await this.#resign(epoch).catch(() => undefined);
    this.#watch?.cancel();
    await this.#memberFeed?.stop();
    await this.#watchLoop;
    await this.#leaderLoop;
    this.#client.close();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new LanhaError('unavailable', `the state log closed before ${p.key} applied`));
    }
    this.#pending.clear();
    this.#queue = [];
    this.#records.clear();
  }

  // ---- following: load, watch, apply ----------------------------------------------------------

  /** Range the whole prefix at one revision: the snapshot if newer than our state, then the log keys after it. */
  async #load(): Promise<void> {
    const r = await this.#client.range(this.#o.prefix, { rangeEnd: this.#p.end });
    const snapshot = r.kvs.find((kv) => kv.key === this.#p.snapshot);
    if (snapshot) {
      try {
        const s = decodeFsmSnapshot(gunzipSync(snapshot.value));
        if (s.appliedIndex > this.fsm.appliedIndex) this.fsm.restore(s);
        this.#snapshotIndex = s.appliedIndex;
      } catch (error) {
        throw new LanhaError('unavailable', `the snapshot under ${this.#p.snapshot} cannot be read (${errorMessage(error)}): is another program writing under this prefix?`);
      }
    }
    this.#logKeys.clear();
    this.#logEntries = 0;
    const events = r.kvs.filter((kv) => kv.key !== this.#p.snapshot).sort((a, b) => a.modRevision - b.modRevision).map((kv): WatchEvent => ({ type: 'put', kv }));
    this.#holder = null;
    this.#handoff = null;
    this.#onEvents(events, r.revision);
  }

  async #follow(): Promise<void> {
    let backoffMs = 50;
    while (!this.#closed) {
      try {
        await this.#client.ensureAuth();
      } catch (error) {
        this.#noteError(error);
        this.#client.failover();
        await sleep(backoffMs);
        backoffMs = Math.min(1000, backoffMs * 2);
        continue;
      }
      const endpoint = this.#client.endpoint;
      // Not back through the endpoint whose watch just stalled (a frozen member keeps its
      // connections open and would stall it again) while another is there: unary calls that failed
      // over meanwhile may have brought the client round to it.
      const stall = this.#lastStall;
      if (stall !== null && endpoint === stall.endpoint && this.#client.endpoints.length > 1
        && this.#o.clock.monotonicMs() - this.#stallAtMs < STALLED_ENDPOINT_AVOID_MS) {
        this.#client.failover();
        continue;
      }
      this.#watchEndpoint = endpoint;
      this.#watchSerial++;
      const watch = this.#client.watch(this.#o.prefix, this.#p.end, this.#revision + 1, (events, revision) => this.#onEvents(events, revision));
      this.#watch = watch;
      const error = await watch.done;
      if (this.#closed) return;
      if (error === null) { // cancelled by a stall guard (#lead, #checkWatch): follow from another endpoint
        if (this.#client.endpoint === endpoint) this.#client.failover(); // a failed unary call may have moved on already
        continue;
      }
      this.#stats.watchRestarts++;
      this.#noteError(error);
      if (isAuthError(error)) this.#client.resetAuth();
      try {
        if (error.compacted) {
          // Fell behind etcd's compaction point: the history we need is gone, the keys are not.
          this.#stats.reloads++;
          this.#o.log.warn({ event: 'etcd.reload', revision: this.#revision, reason: error.message }, `behind etcd's compaction at revision ${this.#revision}: reloading the state`);
          this.#loading = true;
          this.#watchSerial++;
          try {
            await this.#load();
          } finally {
            this.#loading = false;
          }
        } else {
          this.#client.failover();
          await sleep(backoffMs);
          backoffMs = Math.min(1000, backoffMs * 2);
          // A watch that ended on a dead member: check we are not behind a compaction meanwhile.
          continue;
        }
        backoffMs = 50;
      } catch (loadError) {
        this.#noteError(loadError);
        this.#client.failover();
        await sleep(backoffMs);
        backoffMs = Math.min(1000, backoffMs * 2);
      }
    }
  }

  /**
   * A watch can stall without ending (its member frozen, or stuck behind a partition with its TCP
   * connection open): every watchCheckMs, a range read through any endpoint asks for a key under
   * the prefix written after what the watch delivered and no later than the revision the previous
   * check saw. One there means the watch missed it for a whole interval: it is stale; it restarts
   * on another endpoint from the last revision applied, and status says so until it caught up.
   */
  async #checkWatch(): Promise<void> {
    // A reload is the catch-up itself (its range read can take seconds on a loaded machine): the
    // watch started after it is judged from a check made once it runs.
    if (this.#checking || this.#closed || this.#loading) return;
    this.#checking = true;
    try {
      const seen = this.#revision;
      const upTo = this.#checkedRevision;
      const serial = this.#watchSerial;
      let current = true;
      if (seen > this.#seenAtLastCheck && this.#stale === null) {
        // The watch delivered since the last check: it is not stalled (it delivers in revision order).
        this.#seenAtLastCheck = seen;
        this.#setBaseline(serial, seen, this.#checkedSerial === serial);
        return;
      }
      this.#seenAtLastCheck = seen;
      if (upTo > seen) {
        const r = await this.#client.range(this.#o.prefix, { rangeEnd: this.#p.end, keysOnly: true, limit: 1, minModRevision: seen + 1, maxModRevision: upTo });
        // Only the watch that already ran when upTo was read, and still runs, had a whole interval
        // to deliver up to it. One started since (a restart after a stall, or after a reload) has
        // not: judging it against the old baseline recorded a second, false stall through a healthy
        // member while the first one's reload ran, and restarted the watch once more for nothing.
        const judged = this.#checkedSerial === serial && this.#watchSerial === serial && !this.#loading;
        this.#setBaseline(serial, r.revision, judged);
        const missed = r.kvs[0];
        if (missed !== undefined) {
          if (judged && this.#revision === seen && !this.#closed) {
            this.#onStale(seen, missed.modRevision, upTo);
            return;
          }
          current = false; // the watch moved on meanwhile, or is new: judged at the next check
        }
      } else {
        const r = await this.#client.range(this.#p.leader, { keysOnly: true });
        this.#setBaseline(serial, r.revision, this.#checkedSerial === serial);
      }
      // Nothing under the prefix the watch should have shown is missing here: current again.
      if (current && this.#stale !== null) {
        this.#o.log.info({ event: 'etcd.watch_resumed', revision: this.#revision, endpoint: this.#watchEndpoint, staleMs: Math.round(this.#o.clock.monotonicMs() - this.#stale.sinceMs) },
          `the watch is current again at revision ${this.#revision} (through ${this.#watchEndpoint})`);
        this.#stale = null;
      }
    } catch (error) {
      this.#noteError(error);
    } finally {
      this.#checking = false;
    }
  }

  /**
   * The revision the next check expects the watch to have delivered, read under watch `serial`:
   * raised (`keep`) while the same watch runs, replaced when a new one started since.
   */
  #setBaseline(serial: number, revision: number, keep: boolean): void {
    this.#checkedRevision = keep ? Math.max(this.#checkedRevision, revision) : revision;
    this.#checkedSerial = serial;
  }

  #onStale(seen: number, missedRevision: number, upTo: number): void {
    const endpoint = this.#watchEndpoint;
    this.#stats.staleWatches++;
    this.#stallsByEndpoint.set(endpoint, (this.#stallsByEndpoint.get(endpoint) ?? 0) + 1);
    this.#stale ??= { sinceMs: this.#o.clock.monotonicMs(), upTo, endpoint };
    this.#stale.upTo = Math.max(this.#stale.upTo, upTo);
    this.#lastStall = { at: new Date(this.#o.clock.wallMs()).toISOString(), endpoint, appliedRevision: seen, missedRevision };
    this.#stallAtMs = this.#o.clock.monotonicMs();
    this.#o.log.warn({ event: 'etcd.watch_stale', endpoint, revision: seen, missed: missedRevision },
      `the watch through ${endpoint} delivered nothing after revision ${seen}, yet etcd holds a key under the prefix at revision ${missedRevision}: state here is stale; watching through another endpoint`);
    this.#watch?.cancel();
  }

  #onEvents(events: WatchEvent[], revision: number): void {
    const now = this.#o.clock.monotonicMs();
    this.#openRevision = 0; // a revision's events come in one call (one watch response, or the whole load)
    let election = false;
    for (const e of events) {
      if (e.kv.key === this.#p.leader || e.kv.key === this.#p.handoff) election = true;
      this.#onEvent(e, now);
    }
    if (revision > this.#revision) this.#revision = revision;
    this.#settlePending();
    for (const [key, sent] of this.#records) {
      if (sent.every((p) => this.#pending.get(p.key) !== p)) this.#records.delete(key); // settled some other way (a reload past it)
    }
    // The election moved (a vacancy to campaign for, a win to see): the leadership loop acts now.
    // Not on every entry: each wake-up sends a keep-alive, a lease renewal etcd forwards to its leader.
    if (election) this.#wake?.();
    void this.#maybeSnapshot();
  }

  #onEvent(e: WatchEvent, now: number): void {
    const key = e.kv.key;
    if (key === this.#p.leader) {
      this.#onElection(e, now);
      return;
    }
    if (key === this.#p.snapshot) return; // read only when (re)loading
    if (key === this.#p.handoff) {
      this.#handoff = e.type === 'delete' ? null : Buffer.from(e.kv.value).toString('utf8');
      return;
    }
    if (key.startsWith(this.#p.legacyAddr)) return; // an address key as versions before batch records kept them
    if (!key.startsWith(this.#p.log)) {
      this.#stats.foreign++;
      this.#once('foreign', { event: 'etcd.foreign_key', key }, `a key under the prefix that lanha did not write (${key}): skipped; is the prefix shared with another program?`);
      return;
    }
    if (e.type === 'delete') { // compaction after a snapshot (by whoever leads)
      const live = this.#logKeys.get(key);
      if (live !== undefined) this.#logEntries -= live.entries;
      this.#logKeys.delete(key);
      return;
    }
    // A key written twice would be a second put of one record: apply only its creation.
    if (e.kv.version !== 1) return;
    // Stopped at an entry of a newer lanha: nothing after it may apply either (cluster/apply-level.ts).
    if (this.#applyStopped !== null) return;
    const entries = decodeRecord(e.kv.value);
    if (!this.#logKeys.has(key)) this.#logEntries += entries.length;
    this.#logKeys.set(key, { revision: e.kv.modRevision, entries: entries.length });
    // In the snapshot, or applied before a reload; an older version's txn wrote several keys at one revision.
    const revision = e.kv.modRevision;
    if (revision < this.fsm.appliedIndex || (revision === this.fsm.appliedIndex && revision !== this.#openRevision)) return;
    this.#openRevision = revision;
    const sent = this.#records.get(key);
    this.#records.delete(key);
    entries.forEach((decoded, i) => {
      if (this.#applyStopped !== null) return;
      if (!decoded.ok && decoded.newer === true) {
        this.#stopApplying(revision, decoded.error, decoded.type ?? null);
        return;
      }
      if (!decoded.ok) {
        this.#stats.skipped++;
        this.#once('undecodable', { event: 'etcd.entry_skipped', key, entry: i, revision, reason: decoded.error }, `entry ${i} of ${key} at revision ${revision} cannot be applied (${decoded.error}): skipped`);
        return;
      }
      this.fsm.apply(revision, decoded.value, true);
      this.#stats.applied++;
      const p = sent?.[i];
      if (p !== undefined && this.#pending.get(p.key) === p) {
        this.#pending.delete(p.key);
        clearTimeout(p.timer);
        p.resolve({ index: revision, at: this.fsm.lastAt, ...(decoded.value.by === undefined ? {} : { by: decoded.value.by }), command: decoded.value.command, timing: this.#timing(p) });
      }
    });
  }

  #onElection(e: WatchEvent, now: number): void {
    const before = this.#holder;
    if (e.type === 'delete') {
      this.#holder = null;
      if (before !== null && before.name !== this.#o.id) this.#timeline.heardLeaderAt = now;
      // Our key went with our lease (it expired in etcd, or was revoked): campaign on a new one at
      // once. Kept, the next campaign named the dead lease, failed, and waited a whole keep-alive
      // interval (bench:backend: a loaded machine's lapse cost seconds of DHCP instead of one).
      if (before !== null && this.#lease !== null && before.lease === this.#lease.id) this.#lease = null;
    } else {
      this.#holder = { name: Buffer.from(e.kv.value).toString('utf8'), epoch: e.kv.createRevision, lease: e.kv.lease };
    }
    if (this.#epoch !== null && this.#holder?.epoch !== this.#epoch) this.#lostLeadership('the election key changed', this.#holder?.name ?? null);
    if (before?.name !== this.#holder?.name || before?.epoch !== this.#holder?.epoch) {
      this.#o.log.info({ event: 'etcd.leader', leader: this.#holder?.name ?? null, epoch: this.#holder?.epoch ?? null }, this.#holder === null ? 'no lanha leader in etcd' : `lanha leader is ${this.#holder.name} (epoch ${this.#holder.epoch})`);
    }
  }

  /**
   * Where a proposal's time went (the DHCP ACK stages): queued behind the txn in flight, its txn
   * (etcd's quorum fsync included), then until the watch brought it back and it was applied here
   * (0 when the watch was faster than the txn's answer).
   */
  #timing(p: Pending): ProposalTiming {
    const now = this.#o.clock.monotonicMs();
    const sentAt = p.sentAt || now;
    const answeredAt = p.answeredAt || now;
    return { queuedMs: Math.max(0, sentAt - p.queuedAt), persistMs: Math.max(0, answeredAt - sentAt), commitMs: Math.max(0, now - answeredAt) };
  }

  /** Proposals whose txn revision is applied here but whose key we never saw (a reload skipped past it). */
  #settlePending(): void {
    for (const p of this.#pending.values()) {
      if (p.revision === null || p.revision > this.#revision) continue;
      this.#pending.delete(p.key);
      clearTimeout(p.timer);
      p.resolve({ index: p.revision, at: p.at, by: this.#o.id, command: p.command, timing: this.#timing(p) });
    }
  }

  // ---- leadership -------------------------------------------------------------------------------

  /** Says once, clearly, when leadership lapses because etcd stopped answering keep-alives. */
  #checkLapse(): void {
    const leading = this.isLeader();
    if (this.#wasLeading && !leading && this.#epoch !== null && this.#o.clock.monotonicMs() >= this.#deadline) {
      this.#o.log.warn({ event: 'etcd.lease_lapsed', lastError: this.#lastError }, `no etcd keep-alive answered within the lease: not leading, no DHCP answers until etcd answers again (last error: ${this.#lastError ?? 'none'})`);
    }
    this.#wasLeading = leading;
  }

  async #lead(): Promise<void> {
    const ttlMs = this.#o.leaseTtlMs;
    const intervalMs = Math.max(100, Math.floor(ttlMs / 4));
    // A keep-alive stuck on an unreachable member must not hold the lapse line back (the loop
    // waits on it): checked on a timer of its own too.
    const lapseTimer = setInterval(() => this.#checkLapse(), Math.max(50, Math.floor(intervalMs / 2)));
    lapseTimer.unref();
    try {
      await this.#leadLoop(ttlMs, intervalMs);
    } finally {
      clearInterval(lapseTimer);
    }
  }

  async #leadLoop(ttlMs: number, intervalMs: number): Promise<void> {
    let healthAt = -Infinity;
    let retriedAtOnce = false;
    while (!this.#closed) {
      const now = this.#o.clock.monotonicMs();
      let retryAtOnce = false;
      try {
        await this.#keepAlive();
        // A planned failover named someone: only that node campaigns (its own hold-off aside).
        const named = this.#handoff === this.#o.id;
        if (this.#applyStopped === null && this.#epoch === null && this.#holder === null && (named || (this.#handoff === null && now >= this.#holdOffUntil))) await this.#campaign();
        else if (this.#epoch === null && this.#holder !== null && this.#holder.name === this.#o.id && this.#holder.lease === this.#lease?.id) {
          this.#epoch = this.#holder.epoch; // we won, but the answer was lost
        }
      } catch (error) {
        this.#noteError(error);
        // The campaign named a lease etcd no longer holds: a new one, and campaign again now (once).
        if (isLeaseNotFound(error)) {
          this.#lease = null;
          retryAtOnce = !retriedAtOnce;
        }
      }
      this.#checkLapse();
      // Won, but the watch has not shown the win after two TTLs: it is stuck on a member that
      // cannot reach the others; move it (it restarts on the next endpoint).
      if (this.#epoch !== null && this.#revision < this.#epoch) {
        this.#behindSince ??= now;
        if (now - this.#behindSince > 2 * ttlMs) {
          this.#behindSince = null;
          this.#stats.watchRestarts++;
          this.#watch?.cancel();
        }
      } else {
        this.#behindSince = null;
      }
      if (now - healthAt > 5000) {
        healthAt = now;
        void this.checkHealth().catch(() => undefined);
      }
      retriedAtOnce = retryAtOnce;
      if (retryAtOnce) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        this.#wake = () => { clearTimeout(timer); resolve(); };
      });
      this.#wake = null;
    }
  }

  /**
   * Grants a lease when we hold none, else sends a renewal without waiting for it; the deadline
   * runs from the send time of the renewal etcd answered.
   */
  async #keepAlive(): Promise<void> {
    const sentAt = this.#o.clock.monotonicMs();
    if (this.#lease === null) {
      const granted = await this.#client.leaseGrant(Math.round(this.#o.leaseTtlMs / 1000));
      this.#lease = { id: granted.id, ttlS: granted.ttlS };
      this.#deadline = sentAt + this.#margined(granted.ttlS);
      return;
    }
    this.#renew(this.#lease);
  }

  /**
   * One renewal, not waiting for the one before: on a loaded machine etcd answers a keep-alive in a
   * second or more, and renewals one at a time, each sent only after the last answered, let the
   * lease lapse here while etcd kept renewing it (bench:backend at load 36: 10 s without DHCP).
   * At most three in flight.
   */
  #renew(lease: { id: string; ttlS: number }): void {
    if (this.#renewals >= 3 || this.#closed) return;
    this.#renewals++;
    const sentAt = this.#o.clock.monotonicMs();
    // An answer later than the part of the TTL we count on extends nothing: try the next endpoint instead.
    this.#client.leaseKeepAlive(lease.id, Math.max(200, Math.floor(this.#margined(lease.ttlS)))).then((ttlS) => {
      if (this.#lease?.id !== lease.id) return; // an answer about a lease we gave up meanwhile
      if (ttlS <= 0) {
        this.#o.log.warn({ event: 'etcd.lease_lost', lease: lease.id }, 'the leadership lease expired in etcd');
        this.#lease = null;
        this.#lostLeadership('the lease expired', null);
        this.#wake?.(); // a new lease and a campaign now, not at the next interval
        return;
      }
      this.#deadline = Math.max(this.#deadline, sentAt + this.#margined(ttlS));
    }, (error: unknown) => {
      this.#stats.keepAliveFailures++;
      this.#noteError(error);
    }).finally(() => { this.#renewals--; });
  }

  /** The part of a TTL we count on: less 10% (clock rate differences) and 100 ms. */
  #margined(ttlS: number): number {
    return ttlS * 1000 * 0.9 - 100;
  }

  async #campaign(): Promise<void> {
    const lease = this.#lease;
    if (lease === null) return;
    this.#stats.campaigns++;
    const candidateAt = this.#o.clock.monotonicMs();
    // The handoff as etcd holds it must match our view: absent, or naming us (then it goes with the win).
    const self = new TextEncoder().encode(this.#o.id);
    const named = this.#handoff === this.#o.id;
    const r = await this.#client.txn(
      [
        { key: this.#p.leader, target: 'CREATE', result: 'EQUAL', createRevision: 0 },
        named ? { key: this.#p.handoff, target: 'VALUE', result: 'EQUAL', value: self } : { key: this.#p.handoff, target: 'CREATE', result: 'EQUAL', createRevision: 0 },
      ],
      [{ put: { key: this.#p.leader, value: self, lease: lease.id } }, ...(named ? [{ deleteRange: { key: this.#p.handoff } }] : [])],
      [{ range: { key: this.#p.leader } }],
    );
    if (!r.succeeded) {
      const kv: KeyValue | undefined = r.ranges[0]?.[0];
      if (kv && Buffer.from(kv.value).toString('utf8') === this.#o.id && kv.lease === lease.id) this.#epoch = kv.createRevision;
      return;
    }
    this.#timeline.candidateAt = candidateAt;
    this.#timeline.leaderAt = this.#o.clock.monotonicMs();
    this.#epoch = r.revision;
    this.#seq = 0;
    this.#recordSeq = 0;
    this.#o.log.info({ event: 'etcd.elected', epoch: r.revision, lease: lease.id }, `elected lanha leader in etcd (epoch ${r.revision}); serving once the state up to it is applied`);
  }

  async #resign(epoch: number, to: string | null = null): Promise<void> {
    const lease = this.#lease;
    try {
      const handoff: TxnOp[] = [];
      if (to !== null) {
        const expiry = await this.#client.leaseGrant(Math.max(1, Math.ceil((2 * this.#o.leaseTtlMs) / 1000)));
        handoff.push({ put: { key: this.#p.handoff, value: new TextEncoder().encode(to), lease: expiry.id } });
      }
      await this.#client.txn([{ key: this.#p.leader, target: 'CREATE', result: 'EQUAL', createRevision: epoch }], [{ deleteRange: { key: this.#p.leader } }, ...handoff]);
      if (lease !== null) {
        this.#lease = null;
        await this.#client.leaseRevoke(lease.id);
      }
      this.#o.log.info({ event: 'etcd.resigned', epoch, to }, `resigned the lanha leadership in etcd${to === null ? '' : `, naming ${to} to take it`}`);
    } catch (error) {
      this.#noteError(error); // the lease runs out by itself within its TTL
    }
  }

  /**
   * A log entry of a newer lanha (a command type or version this one does not know). Skipping it,
   * as undecodable keys are, would leave this member's state apart from the members that apply it;
   * so applying stops there for good (the process stays up: DNS, TFTP and NTP serve what was
   * applied), and this member neither leads nor campaigns: a leader resigns at once. An upgrade
   * and a restart are the way on.
   */
  #stopApplying(revision: number, error: string, type: string | null): void {
    this.#applyStopped = unknownEntryError(revision, error, type);
    this.#o.log.error({ event: 'etcd.entry_too_new', revision, applied: this.fsm.appliedIndex, applyLevel: APPLY_LEVEL }, this.#applyStopped);
    const epoch = this.#epoch;
    if (epoch === null) return;
    this.#epoch = null;
    this.#deadline = 0;
    void this.#resign(epoch);
  }

  #lostLeadership(reason: string, holder: string | null): void {
    if (this.#epoch === null) return;
    this.#o.log.warn({ event: 'etcd.leadership_lost', reason, holder }, `no longer the lanha leader: ${reason}`);
    this.#epoch = null;
  }

  // ---- snapshots --------------------------------------------------------------------------------

  /** The leader writes a snapshot every snapshotEntries entries, then deletes the log keys it covers. */
  async #maybeSnapshot(): Promise<void> {
    const every = this.#o.snapshotEntries ?? 10_000;
    const epoch = this.#epoch;
    if (this.#snapshotting || epoch === null || !this.isLeader() || this.#logEntries < every) return;
    this.#snapshotting = true;
    try {
      const snapshot = this.fsm.snapshot();
      const covered = [...this.#logKeys].filter(([, live]) => live.revision <= snapshot.appliedIndex).map(([key]) => key);
      const fence = { key: this.#p.leader, target: 'CREATE' as const, result: 'EQUAL' as const, createRevision: epoch };
      // Compressed on the thread pool: tens of thousands of leases took the event loop (and DHCP) away for tens of ms.
      const value = await gzipAsync(encodeFsmSnapshot(snapshot));
      const put = await this.#client.txn([fence], [{ put: { key: this.#p.snapshot, value } }]);
      if (!put.succeeded) return;
      this.#snapshotIndex = snapshot.appliedIndex;
      this.#stats.snapshots++;
      for (let i = 0; i < covered.length; i += DELETE_BATCH) {
        const r = await this.#client.txn([fence], covered.slice(i, i + DELETE_BATCH).map((key) => ({ deleteRange: { key } })));
        if (!r.succeeded) return;
      }
      for (const key of covered) {
        const live = this.#logKeys.get(key);
        if (live !== undefined) this.#logEntries -= live.entries;
        this.#logKeys.delete(key);
      }
      this.#o.log.info({ event: 'etcd.snapshot', index: snapshot.appliedIndex, deleted: covered.length }, `snapshot at revision ${snapshot.appliedIndex}; ${covered.length} log keys deleted`);
    } catch (error) {
      this.#noteError(error);
    } finally {
      this.#snapshotting = false;
    }
  }

  // ---- logging ----------------------------------------------------------------------------------

  #noteError(error: unknown): void {
    const message = errorMessage(error);
    this.#lastError = message;
    if (this.#limiter.allow(`error:${error instanceof EtcdError ? error.endpoint : ''}`, this.#o.clock.monotonicMs())) {
      this.#o.log.warn({ event: 'etcd.error', err: message }, `etcd: ${message}`);
    }
  }

  #onceSeen = new Set<string>();
  #once(kind: string, fields: Record<string, unknown>, message: string): void {
    if (this.#onceSeen.has(kind)) return;
    this.#onceSeen.add(kind);
    this.#o.log.warn(fields, `${message} (logged once; status shows the count)`);
  }
}
