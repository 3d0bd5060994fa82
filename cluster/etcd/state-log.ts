import { gunzipSync, gzipSync } from 'node:zlib';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import { decodeCommand, encodeCommand, type Command } from '../commands.js';
import { Fsm, type AppliedEntry } from '../fsm.js';
import { LogClock } from '../log-time.js';
import { ConflictError, NotLeaderError, type StateLog, type StateLogStatus } from '../state-log.js';
import { decodeFsmSnapshot, encodeFsmSnapshot, type RaftTimeline } from '../raft-state-log.js';
import type { MemberStatusChannel } from '../member-status.js';
import { EtcdMemberFeed } from './member-feed.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import { EtcdClient, EtcdError, isAuthError, prefixEnd, type EndpointHealth, type KeyValue, type Watch, type WatchEvent } from './client.js';

// The StateLog on an etcd v3 cluster (`cluster.backend: etcd`). Keys under the site's prefix P:
//
//   P leader              the election: value = node name, attached to the holder's etcd lease;
//                         its create revision is the holder's epoch ("term") and fencing token
//   P log/<epoch>-<seq>   one command each, written by the holder in a txn that compares P leader's
//                         create revision with its epoch (a deposed holder's write fails) and the
//                         key's create revision with 0 (a retried write cannot apply twice)
//   P addr/<a.b.c.d>      one per address a lease command (grant, release, decline, expire) touched,
//                         written in that command's txn (value: its log key); the txn compares the
//                         key's mod revision with the one the proposer had applied, so a command
//                         decided on an address that someone else's command changed meanwhile fails
//                         (ConflictError, nothing written): never two clients ACKed one address
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
}

interface Pending {
  key: string;
  command: Command;
  at: number;
  /** The txn's revision once etcd answered. */
  revision: number | null;
  resolve: (entry: AppliedEntry) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** The address a lease command binds, frees or quarantines (what its txn must compare); null for other commands. */
function addrOf(command: Command): number | null {
  switch (command.type) {
    case 'lease.grant': case 'lease.release': case 'lease.decline': case 'lease.expire': return command.ip;
    default: return null;
  }
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** etcd's default --max-txn-ops is 128. */
const DELETE_BATCH = 100;

export class EtcdStateLog implements StateLog {
  readonly fsm = new Fsm();
  #o: EtcdStateLogOptions;
  #client: EtcdClient;
  #p: { leader: string; log: string; addr: string; snapshot: string; end: string };
  #logClock: LogClock;
  #limiter = new LogLimiter();
  #closed = false;
  /** The highest etcd revision whose events are all applied here. */
  #revision = 0;
  #watch: Watch | null = null;
  #watchLoop: Promise<void> | null = null;
  #leaderLoop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  /** The election as last seen: holder name and epoch (create revision), null when vacant. */
  #holder: { name: string; epoch: number; lease: string } | null = null;
  /** Our own leadership: the lease, its local deadline (monotonic), our epoch once won. */
  #lease: { id: string; ttlS: number } | null = null;
  #deadline = 0;
  #epoch: number | null = null;
  #seq = 0;
  #holdOffUntil = 0;
  #behindSince: number | null = null;
  #wasLeading = false;
  #pending = new Map<string, Pending>();
  /** Each address key's mod revision as applied here (absent: never written, compares as 0). */
  #addrRev = new Map<string, number>();
  /** Live log keys in revision order (what a snapshot lets the leader delete). */
  #logKeys: Array<{ key: string; revision: number }> = [];
  #snapshotIndex = 0;
  #snapshotting = false;
  #stats = { conflicts: 0, applied: 0, skipped: 0, foreign: 0, reloads: 0, watchRestarts: 0, campaigns: 0, keepAliveFailures: 0, snapshots: 0 };
  #lastError: string | null = null;
  #health: EndpointHealth[] = [];
  #memberFeed: EtcdMemberFeed | null = null;
  #timeline: RaftTimeline = { heardLeaderAt: null, timeoutNowAt: null, preCandidateAt: null, candidateAt: null, leaderAt: null };

  private constructor(o: EtcdStateLogOptions) {
    this.#o = o;
    this.#client = o.client;
    this.#p = { leader: `${o.prefix}leader`, log: `${o.prefix}log/`, addr: `${o.prefix}addr/`, snapshot: `${o.prefix}snapshot`, end: prefixEnd(o.prefix) };
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
    if (o.serves !== false) self.#leaderLoop = self.#lead();
    o.log.info({ event: 'etcd.opened', endpoints: o.client.endpoints, prefix: o.prefix, revision: self.#revision, applied: self.fsm.appliedIndex, snapshot: self.#snapshotIndex },
      `state loaded from etcd at revision ${self.#revision}`);
    return self;
  }

  isLeader(): boolean {
    return !this.#closed && this.#o.serves !== false && this.#epoch !== null && this.#holder?.epoch === this.#epoch
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

  async propose(command: Command): Promise<AppliedEntry> {
    if (this.#closed) throw new LanhaError('unavailable', 'the state log is closed');
    const epoch = this.#epoch;
    if (!this.isLeader() || epoch === null) throw new NotLeaderError(this.#holder && this.#holder.name !== this.#o.id ? this.#holder.name : null);
    const at = this.#logClock.stamp(epoch, this.fsm.lastAt);
    const key = `${this.#p.log}${pad(epoch, 16)}-${pad(++this.#seq, 12)}`;
    const timeoutMs = this.#o.proposeTimeoutMs ?? 5000;
    const applied = new Promise<AppliedEntry>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        reject(new LanhaError('unavailable', `entry ${key} was not applied within ${timeoutMs} ms (etcd unreachable or behind?)`));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(key, { key, command, at, revision: null, resolve, reject, timer });
    });
    applied.catch(() => undefined);
    // What the command depends on: the address's key as this node applied it.
    const addr = addrOf(command);
    const addrKey = addr === null ? null : `${this.#p.addr}${formatIpv4(addr)}`;
    const expected = addrKey === null ? 0 : this.#addrRev.get(addrKey) ?? 0;
    try {
      const r = await this.#client.txn(
        [
          { key: this.#p.leader, target: 'CREATE', result: 'EQUAL', createRevision: epoch },
          { key, target: 'CREATE', result: 'EQUAL', createRevision: 0 },
          ...(addrKey === null ? [] : [{ key: addrKey, target: 'MOD' as const, result: 'EQUAL' as const, modRevision: expected }]),
        ],
        [
          { put: { key, value: encodeCommand({ at, by: this.#o.id, command }) } },
          ...(addrKey === null ? [] : [{ put: { key: addrKey, value: new TextEncoder().encode(key) } }]),
        ],
        [{ range: { key: this.#p.leader } }, { range: { key } }, ...(addrKey === null ? [] : [{ range: { key: addrKey } }])],
      );
      const mine = r.succeeded ? r.revision : r.ranges[1]?.[0]?.modRevision ?? null; // a retry after a lost answer finds its own key
      if (mine === null) {
        const holder = r.ranges[0]?.[0];
        if (holder !== undefined && holder.createRevision === epoch && addrKey !== null) {
          // Still ours: the address moved on under the command. Catch up to that change (so the
          // client's retry is decided on it), then refuse this one.
          const now = r.ranges[2]?.[0]?.modRevision ?? 0;
          throw await this.#conflict(addrKey, expected, now);
        }
        this.#lostLeadership('the election key is no longer ours', holder ? Buffer.from(holder.value).toString('utf8') : null);
        throw new NotLeaderError(holder ? Buffer.from(holder.value).toString('utf8') : null);
      }
      const p = this.#pending.get(key);
      if (p) p.revision = mine;
      this.#settlePending();
    } catch (error) {
      const p = this.#pending.get(key);
      if (p) { clearTimeout(p.timer); this.#pending.delete(key); }
      if (error instanceof NotLeaderError || error instanceof ConflictError) throw error;
      throw new LanhaError('unavailable', `could not commit to etcd: ${errorMessage(error)}`);
    }
    return applied;
  }

  /** Waits (briefly) until the change that beat a command is applied here; the error to refuse it with. */
  async #conflict(addrKey: string, expected: number, now: number): Promise<ConflictError> {
    this.#stats.conflicts++;
    const deadline = this.#o.clock.monotonicMs() + 1000;
    while (this.#revision < now && this.#o.clock.monotonicMs() < deadline && !this.#closed) await sleep(5);
    const address = addrKey.slice(this.#p.addr.length);
    return new ConflictError(`address ${address} changed in etcd (revision ${now}) after this node decided on it (revision ${expected}): command refused, nothing written`);
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
      etcd: {
        endpoints: this.#client.endpoints,
        endpoint: this.#client.endpoint,
        health: this.#health,
        prefix: this.#o.prefix,
        revision: this.#revision,
        holder: this.#holder === null ? null : { name: this.#holder.name, epoch: this.#holder.epoch, self: this.#holder.name === self },
        leaseTtlS: this.#lease?.ttlS ?? Math.round(this.#o.leaseTtlMs / 1000),
        lastError: this.#lastError,
        ...this.#stats,
      },
      stateHash: this.fsm.hash(),
    };
  }

  /** Asks every endpoint for its status now (status() shows the last answers). */
  async checkHealth(): Promise<EndpointHealth[]> {
    this.#health = await this.#client.health();
    return this.#health;
  }

  /**
   * Planned failover: give the election up (delete our key, revoke the lease) and stay out of it
   * for resignHoldOffMs so another server wins. etcd elections cannot name the winner: `to` is
   * whoever campaigns next (with two LAN servers, the other one).
   */
  transferLeadership(_to: string): boolean {
    const epoch = this.#epoch;
    if (epoch === null) return false;
    this.#holdOffUntil = this.#o.clock.monotonicMs() + (this.#o.resignHoldOffMs ?? 2 * this.#o.leaseTtlMs);
    this.#epoch = null;
    this.#deadline = 0;
    void this.#resign(epoch);
    return true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const epoch = this.#epoch;
    this.#closed = true;
    this.#epoch = null;
    this.#wake?.();
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
    this.#logKeys = [];
    this.#addrRev.clear();
    const events = r.kvs.filter((kv) => kv.key !== this.#p.snapshot).sort((a, b) => a.modRevision - b.modRevision).map((kv): WatchEvent => ({ type: 'put', kv }));
    this.#holder = null;
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
      const watch = this.#client.watch(this.#o.prefix, this.#p.end, this.#revision + 1, (events, revision) => this.#onEvents(events, revision));
      this.#watch = watch;
      const error = await watch.done;
      if (this.#closed) return;
      if (error === null) { // cancelled by the stall guard in #lead: follow from another endpoint
        this.#client.failover();
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
          await this.#load();
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

  #onEvents(events: WatchEvent[], revision: number): void {
    const now = this.#o.clock.monotonicMs();
    for (const e of events) this.#onEvent(e, now);
    if (revision > this.#revision) this.#revision = revision;
    this.#settlePending();
    this.#wake?.();
    void this.#maybeSnapshot();
  }

  #onEvent(e: WatchEvent, now: number): void {
    const key = e.kv.key;
    if (key === this.#p.leader) {
      this.#onElection(e, now);
      return;
    }
    if (key === this.#p.snapshot) return; // read only when (re)loading
    if (key.startsWith(this.#p.addr)) {
      if (e.type === 'delete') this.#addrRev.delete(key);
      else this.#addrRev.set(key, e.kv.modRevision);
      return;
    }
    if (!key.startsWith(this.#p.log)) {
      this.#stats.foreign++;
      this.#once('foreign', { event: 'etcd.foreign_key', key }, `a key under the prefix that lanha did not write (${key}): skipped; is the prefix shared with another program?`);
      return;
    }
    if (e.type === 'delete') return; // compaction after a snapshot
    // A key written twice would be a second put of one command: apply only its creation.
    if (e.kv.version !== 1) return;
    this.#logKeys.push({ key, revision: e.kv.modRevision });
    if (e.kv.modRevision <= this.fsm.appliedIndex) return; // in the snapshot, or applied before a reload
    const decoded = decodeCommand(e.kv.value);
    if (!decoded.ok) {
      this.#stats.skipped++;
      this.#once('undecodable', { event: 'etcd.entry_skipped', key, revision: e.kv.modRevision, reason: decoded.error }, `entry ${key} at revision ${e.kv.modRevision} cannot be applied (${decoded.error}): skipped`);
      return;
    }
    this.fsm.apply(e.kv.modRevision, decoded.value);
    this.#stats.applied++;
    const p = this.#pending.get(key);
    if (p) {
      this.#pending.delete(key);
      clearTimeout(p.timer);
      p.resolve({ index: e.kv.modRevision, at: this.fsm.lastAt, ...(decoded.value.by === undefined ? {} : { by: decoded.value.by }), command: decoded.value.command });
    }
  }

  #onElection(e: WatchEvent, now: number): void {
    const before = this.#holder;
    if (e.type === 'delete') {
      this.#holder = null;
      if (before !== null && before.name !== this.#o.id) this.#timeline.heardLeaderAt = now;
    } else {
      this.#holder = { name: Buffer.from(e.kv.value).toString('utf8'), epoch: e.kv.createRevision, lease: e.kv.lease };
    }
    if (this.#epoch !== null && this.#holder?.epoch !== this.#epoch) this.#lostLeadership('the election key changed', this.#holder?.name ?? null);
    if (before?.name !== this.#holder?.name || before?.epoch !== this.#holder?.epoch) {
      this.#o.log.info({ event: 'etcd.leader', leader: this.#holder?.name ?? null, epoch: this.#holder?.epoch ?? null }, this.#holder === null ? 'no lanha leader in etcd' : `lanha leader is ${this.#holder.name} (epoch ${this.#holder.epoch})`);
    }
  }

  /** Proposals whose txn revision is applied here but whose key we never saw (a reload skipped past it). */
  #settlePending(): void {
    for (const p of this.#pending.values()) {
      if (p.revision === null || p.revision > this.#revision) continue;
      this.#pending.delete(p.key);
      clearTimeout(p.timer);
      p.resolve({ index: p.revision, at: p.at, by: this.#o.id, command: p.command });
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
    while (!this.#closed) {
      const now = this.#o.clock.monotonicMs();
      try {
        await this.#keepAlive();
        if (this.#epoch === null && this.#holder === null && now >= this.#holdOffUntil) await this.#campaign();
        else if (this.#epoch === null && this.#holder !== null && this.#holder.name === this.#o.id && this.#holder.lease === this.#lease?.id) {
          this.#epoch = this.#holder.epoch; // we won, but the answer was lost
        }
      } catch (error) {
        this.#noteError(error);
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
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        this.#wake = () => { clearTimeout(timer); resolve(); };
      });
      this.#wake = null;
    }
  }

  /** Grants a lease when we hold none, else renews it; the deadline runs from the send time. */
  async #keepAlive(): Promise<void> {
    const sentAt = this.#o.clock.monotonicMs();
    if (this.#lease === null) {
      const granted = await this.#client.leaseGrant(Math.round(this.#o.leaseTtlMs / 1000));
      this.#lease = { id: granted.id, ttlS: granted.ttlS };
      this.#deadline = sentAt + this.#margined(granted.ttlS);
      return;
    }
    try {
      // An answer later than half the TTL extends nothing useful: try the next endpoint instead.
      const ttlS = await this.#client.leaseKeepAlive(this.#lease.id, Math.max(200, Math.floor(this.#o.leaseTtlMs / 2)));
      if (ttlS <= 0) {
        this.#o.log.warn({ event: 'etcd.lease_lost', lease: this.#lease.id }, 'the leadership lease expired in etcd');
        this.#lease = null;
        this.#lostLeadership('the lease expired', null);
        return;
      }
      this.#deadline = sentAt + this.#margined(ttlS);
    } catch (error) {
      this.#stats.keepAliveFailures++;
      throw error;
    }
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
    const r = await this.#client.txn(
      [{ key: this.#p.leader, target: 'CREATE', result: 'EQUAL', createRevision: 0 }],
      [{ put: { key: this.#p.leader, value: new TextEncoder().encode(this.#o.id), lease: lease.id } }],
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
    this.#o.log.info({ event: 'etcd.elected', epoch: r.revision, lease: lease.id }, `elected lanha leader in etcd (epoch ${r.revision}); serving once the state up to it is applied`);
  }

  async #resign(epoch: number): Promise<void> {
    const lease = this.#lease;
    try {
      await this.#client.txn([{ key: this.#p.leader, target: 'CREATE', result: 'EQUAL', createRevision: epoch }], [{ deleteRange: { key: this.#p.leader } }]);
      if (lease !== null) {
        this.#lease = null;
        await this.#client.leaseRevoke(lease.id);
      }
      this.#o.log.info({ event: 'etcd.resigned', epoch }, 'resigned the lanha leadership in etcd');
    } catch (error) {
      this.#noteError(error); // the lease runs out by itself within its TTL
    }
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
    if (this.#snapshotting || epoch === null || !this.isLeader() || this.#logKeys.length < every) return;
    this.#snapshotting = true;
    try {
      const snapshot = this.fsm.snapshot();
      const covered = this.#logKeys.filter((k) => k.revision <= snapshot.appliedIndex);
      const fence = { key: this.#p.leader, target: 'CREATE' as const, result: 'EQUAL' as const, createRevision: epoch };
      const put = await this.#client.txn([fence], [{ put: { key: this.#p.snapshot, value: gzipSync(encodeFsmSnapshot(snapshot)) } }]);
      if (!put.succeeded) return;
      this.#snapshotIndex = snapshot.appliedIndex;
      this.#stats.snapshots++;
      for (let i = 0; i < covered.length; i += DELETE_BATCH) {
        const r = await this.#client.txn([fence], covered.slice(i, i + DELETE_BATCH).map((k) => ({ deleteRange: { key: k.key } })));
        if (!r.succeeded) return;
      }
      const gone = new Set(covered.map((k) => k.key));
      this.#logKeys = this.#logKeys.filter((k) => !gone.has(k.key));
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
