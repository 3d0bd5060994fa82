import { APPLY_LEVEL, BASE_LEVEL, addedFieldLevel, commandLevel, envelope1Level, knownField } from './apply-level.js';
import type { DegradedRecord } from './degraded.js';

// The replicated commands: everything the LAN-service nodes share goes through the Raft log as one
// of these. The leader stamps each entry with log time (`at`, ms since the epoch, never going back);
// apply reads time only from that stamp, so every replica computes the same state.
//
// Encoding is versioned JSON: the commands are small, rare next to DNS/TFTP traffic, and readable
// in a log dump. Two envelope versions (below, at VERSION); a replica refuses an entry with a
// version it does not know.

/**
 * The lease time of a binding that never ends by itself: RFC 2131 §3.3's "infinite" 0xffffffff
 * seconds. A BOOTP client's address (RFC 951 has no lease) is granted for this long, as dnsmasq
 * does; its expiry (at + this, some 136 years on) is never reached, so only a release by the
 * operator (`lanctl leases release`) frees it.
 */
export const LEASE_MS_INFINITE = 0xffffffff * 1000;

export type Command =
  /** A new lease or a renewal: the binding ip <-> client holds until at + leaseMs. */
  | { type: 'lease.grant'; ip: number; mac: string; clientId?: string; hostname?: string; subnet: string; leaseMs: number }
  | { type: 'lease.release'; ip: number; mac: string }
  /** The client found the address in use: quarantine it. */
  | { type: 'lease.decline'; ip: number; mac: string; quarantineMs: number }
  /** Reclaim an expired lease (the leader proposes it once expiry has passed in log time). */
  | { type: 'lease.expire'; ip: number }
  /** Operator-set DNS record (lease names come from the leases themselves). */
  | { type: 'dns.set'; name: string; rrtype: string; ttl: number; data: string }
  | { type: 'dns.delete'; name: string; rrtype?: string; data?: string }
  /**
   * Compute-node boot progress (dhcp, tftp file fetched, ...). `relay`: the id of an event another
   * member held for the leader (cluster/boot-relay.ts); not part of the state. `at` (apply level 3):
   * wall-clock ms when it happened on the member where it happened (a power switch on a follower
   * reaches the log a second or more later); absent, the entry's log time.
   */
  | { type: 'node.boot'; mac: string; event: string; detail?: string; relay?: string; at?: number }
  /**
   * The compute-node inventory (cluster/inventory.ts): one entry makes the DHCP reservation, the
   * DNS names, the boot profile and the deploy target. Names are DNS labels, MACs lower-case
   * "aa:bb:..", IPs uint32. `set` fields: absent = keep, null = clear. `origin: 'config'` marks a
   * node seeded from the config's `nodes:` block (never seeded again once removed).
   */
  | { type: 'node.add'; name: string; mac: string; ip?: number; profile?: string; group?: string; origin?: 'config' }
  | { type: 'node.set'; name: string; mac?: string; ip?: number | null; profile?: string | null; group?: string | null }
  /**
   * `unlessInJob` (apply level 3): a no-op while a running deploy job has not finished with the
   * node, so a removal and a job start proposed at the same moment cannot both commit.
   */
  | { type: 'node.remove'; name: string; unlessInJob?: true }
  /** An unknown MAC asked for boot files (DHCP, leader only, at most once a minute per MAC): the pending list. */
  | { type: 'node.seen'; mac: string; arch?: number; vendorClass?: string }
  /** A pending MAC becomes a node. */
  | { type: 'node.accept'; mac: string; name: string; ip?: number; profile?: string; group?: string }
  /** The node's pinned ssh host key, OpenSSH "type base64" (null forgets it). */
  | { type: 'node.trust'; name: string; hostKey: string | null }
  /** Rootfs generations: assigned (what it should boot) and running (verified on it); null clears. */
  | { type: 'node.generation'; name: string; assigned?: string | null; running?: string | null }
  | { type: 'config.generation'; generation: number; hash: string }
  /**
   * A rootfs generation stored on `member` (its copy verified against the manifest whose sha256 is
   * `generation`). `others` (devices, FIFOs, sockets) has always been written with the counts; no
   * state keeps it.
   */
  | { type: 'rootfs.commit'; generation: string; member: string; source: string; files: number; dirs: number; symlinks: number; others?: number; hardlinks: number; bytes: number }
  /** A LAN member checked its copy of a generation against the manifest. */
  | { type: 'rootfs.verified'; generation: string; member: string; ok: boolean; changed?: string[] }
  /** The operator's choice of generation for nodes (`lanctl rollback` assigns the previous one). */
  | { type: 'rootfs.assign'; nodes: string[]; generation: string }
  /** A node's pinned ssh host key, OpenSSH "type base64" (until the inventory holds it). */
  | { type: 'deploy.trust'; node: string; hostKey: string }
  /** A node's own report of a boot-time pull of a generation (lanctl internal ssh-gate). */
  | { type: 'deploy.synced'; node: string; generation: string; ok: boolean; exit?: number; bytes?: number }
  /** Push jobs: `files` the names, `sources` the leader's absolute paths and `sha256` their digests (what `deploy resume` sends again). */
  | { type: 'deploy.job.start'; job: string; kind: 'rootfs' | 'push'; member: string; nodes: string[]; generation?: string; dryRun?: boolean; files?: string[]; sources?: string[]; sha256?: string[]; dest?: string; then?: string; inventory?: string[] }
  /**
   * `run`: the job's run this resume starts (1 for the first resume); a replayed resume of a run
   * already started changes nothing. `inventory` (start and resume, apply level 3): the job's nodes
   * that were inventory nodes when it was proposed; the entry is a no-op when one of them is no
   * longer (a `node.remove` committed first).
   */
  | { type: 'deploy.job.resume'; job: string; member: string; run?: number; inventory?: string[] }
  /**
   * `installed`: a push job's files in place on the node so far (names); a resume sends only the others.
   * `run`: the run of the job that sent it (0 before any resume); an entry of an earlier run changes no state.
   */
  | { type: 'deploy.job.node'; job: string; node: string; state: 'running' | 'done' | 'failed' | 'interrupted'; bytes?: number; total?: number; sent?: number; exit?: number; error?: string; installed?: string[]; run?: number }
  | { type: 'deploy.job.end'; job: string; state: 'done' | 'failed' | 'interrupted'; run?: number }
  /**
   * A new VIP holder's half of the gap (services/vip/takeover.ts), so the old holder's `lanctl
   * failover` can report the whole gap. Changes no state.
   */
  | { type: 'vip.takeover'; node: string; term: number; trigger: 'transfer' | 'election'; parts: Array<[string, number]>; totalMs: number }
  /**
   * DegradedJournalMerge (HA.md 2.4, degraded rule 5): the bindings a LAN member granted alone, without
   * a quorum, from its degraded journal `journal` (records `from`..`upTo` of it), merged into the
   * leases: per (ip, mac) the later expiry (cluster/degraded.ts mergeRecord). Proposed by the leader
   * for itself or for a member whose report carries a journal; a replay of records already merged
   * changes nothing. Only proposed while every member reports a version that knows it.
   */
  | { type: 'lease.merge'; node: string; journal: string; from: number; upTo: number; records: DegradedRecord[] }
  /** Proposed by a new leader to commit entries of earlier terms, and as a time tick. */
  | { type: 'noop' };

export type CommandType = Command['type'];

export interface StampedCommand {
  /** Log time stamped by the leader, ms since the epoch. */
  at: number;
  /**
   * The member that proposed the entry (the leader of its term): for a lease grant, the node that
   * sent the ACK once it committed. Absent in entries written before it was recorded.
   */
  by?: string;
  command: Command;
}

/**
 * Envelope 1, `{v: 1, at, by?, c}`: every entry of the builds before ENVELOPE_LEVEL, and this
 * build's entries whose command carries no field added after its type. Those builds read the
 * command as it came, ignoring fields they did not know, so this build reads envelope 1 as they did
 * (a field it does not know there is one an older build wrote and never applied, such as
 * rootfs.commit's `others`), and never writes a field of meaning into it.
 *
 * Envelope 2, `{v: 2, l, at, by?, c}`: an entry whose command carries a field added after its type
 * (apply-level.ts FIELD_LEVEL), `l` the apply level it needs. Builds before ENVELOPE_LEVEL stop at
 * it as at any entry of a newer lanha (they refuse every version but 1; 488a078 and earlier exit
 * naming the entry instead), where they had applied it without the field, their state silently
 * differing from the others'. This build stops at an envelope-2 entry of a level above its own, or
 * holding a command type, a field or an envelope key it does not know.
 */
const VERSION = 1;
const VERSION_FIELDS = 2;
const ENVELOPE2_KEYS: ReadonlySet<string> = new Set(['v', 'l', 'at', 'by', 'c']);
// One of each for the process (a DHCPACK's command goes through both): stateless once built.
const utf8Encoder = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** `command` with only the fields its type has (COMMAND_FIELDS): a stray key of the object it was built from never reaches the log. */
function ownFields(command: Command): Command {
  if (!COMMAND_TYPES.has(command.type)) return command;
  for (const key in command) {
    if (knownField(command.type, key)) continue;
    const out: Record<string, unknown> = {};
    for (const k in command) if (knownField(command.type, k)) out[k] = (command as Record<string, unknown>)[k];
    return out as Command;
  }
  return command;
}

export function encodeCommand(stamped: StampedCommand): Uint8Array {
  // `by` is an optional envelope field: a replica that predates it ignores it (it reads v, at, c).
  const c = ownFields(stamped.command);
  const by = stamped.by === undefined ? {} : { by: stamped.by };
  const added = addedFieldLevel(c);
  return utf8Encoder.encode(JSON.stringify(added === 0 ? { v: VERSION, at: stamped.at, ...by, c } : { v: VERSION_FIELDS, l: commandLevel(c), at: stamped.at, ...by, c }));
}

/**
 * `newer`: a well-formed entry of a newer lanha (a command version or type this one does not know),
 * which must stop the applying, never be skipped; `type`: its command type, when that is the reason.
 * `level` (decoded): the apply level the entry needs (envelope 2: the one it says; envelope 1: its
 * type's and its fields'); `envelope`: 1 or 2.
 */
export type DecodeCommandResult = { ok: true; value: StampedCommand; level: number; envelope: 1 | 2 } | { ok: false; error: string; newer?: true; type?: string };

const COMMAND_TYPES: ReadonlySet<string> = new Set<CommandType>([
  'lease.grant', 'lease.release', 'lease.decline', 'lease.expire', 'dns.set', 'dns.delete', 'node.boot', 'config.generation', 'vip.takeover', 'noop',
  'node.add', 'node.set', 'node.remove', 'node.seen', 'node.accept', 'node.trust', 'node.generation',
  'rootfs.commit', 'rootfs.verified', 'rootfs.assign', 'deploy.trust', 'deploy.synced',
  'deploy.job.start', 'deploy.job.resume', 'deploy.job.node', 'deploy.job.end', 'lease.merge',
]);

export function decodeCommand(bytes: Uint8Array): DecodeCommandResult {
  let raw: unknown;
  try {
    raw = JSON.parse(utf8Strict.decode(bytes));
  } catch {
    return { ok: false, error: 'entry is not UTF-8 JSON' };
  }
  return decodeCommandJson(raw);
}

/** A name from an entry, shortened and quoted for an error. */
function named(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}...` : key);
}

/** decodeCommand for an entry already parsed from JSON (one element of a batch record, cluster/etcd). */
export function decodeCommandJson(raw: unknown): DecodeCommandResult {
  if (raw === null || typeof raw !== 'object') return { ok: false, error: 'entry is not an object' };
  const o = raw as { v?: unknown; l?: unknown; at?: unknown; by?: unknown; c?: unknown };
  if (o.v !== VERSION && o.v !== VERSION_FIELDS) return { ok: false, error: `unknown command version ${JSON.stringify(o.v)}`, ...(Number.isSafeInteger(o.v) && (o.v as number) > VERSION_FIELDS ? { newer: true as const } : {}) };
  const fields = o.v === VERSION_FIELDS;
  if (fields) {
    if (!Number.isSafeInteger(o.l) || (o.l as number) < BASE_LEVEL) return { ok: false, error: `entry of version 2 without a valid apply level (${JSON.stringify(o.l)})` };
    if ((o.l as number) > APPLY_LEVEL) return { ok: false, error: `the entry needs apply level ${o.l as number}, above this lanha's ${APPLY_LEVEL}`, newer: true };
    for (const key in o) if (!ENVELOPE2_KEYS.has(key)) return { ok: false, error: `the entry has an envelope field ${named(key)} this lanha (apply level ${APPLY_LEVEL}) does not know`, newer: true };
  }
  if (typeof o.at !== 'number' || !Number.isFinite(o.at)) return { ok: false, error: 'entry has no log time' };
  if (o.c === null || typeof o.c !== 'object') return { ok: false, error: 'entry has no command' };
  const type = (o.c as { type?: unknown }).type;
  if (!COMMAND_TYPES.has(String(type))) {
    return typeof type === 'string' && type.length > 0 && type.length <= 64
      ? { ok: false, error: `entry has an unknown command type '${type}'`, newer: true, type }
      : { ok: false, error: 'entry has an unknown command type' };
  }
  const command = o.c as Command;
  // Envelope 1 is read as every build before envelope 2 read it: fields it does not know ignored.
  if (fields) for (const key in command) if (!knownField(command.type, key)) return { ok: false, error: `a '${command.type}' command with a field ${named(key)}, which this lanha (apply level ${APPLY_LEVEL}) does not know`, newer: true };
  const by = typeof o.by === 'string' && o.by.length > 0 && o.by.length <= 63 ? o.by : undefined;
  return { ok: true, value: { at: o.at, ...(by === undefined ? {} : { by }), command }, level: fields ? Math.max(o.l as number, envelope1Level(command)) : envelope1Level(command), envelope: fields ? 2 : 1 };
}
