import type { Command, CommandType } from './commands.js';
import { LanhaError } from '../lib/errors.js';

// Which replicated commands a build can apply, as one number: its apply level. Every member says
// its level in its member report (cluster/member-status.ts, `applyLevel`); a member that sends no
// level (a version before levels, or one never heard from since this process started) counts as
// BASE_LEVEL. The leader proposes a command only when every configured member can apply it
// (`levelRefusal`), so a member that runs an older version never receives an entry it cannot apply
// during a rolling upgrade, and a member that does receive one anyway (downgraded after such an
// entry committed) stops with an error naming the level it needs (`unknownEntryError`) rather than
// skipping it and diverging silently. No I/O here.
//
// To add a command type or change what an existing one does: give it the next level in
// COMMAND_LEVEL (a type) or COMMAND_FIELDS (a field), raise APPLY_LEVEL to it, and say in
// cluster/raft/README.md ("Apply levels") and in LEVEL_ADDS what the level adds. TypeScript makes
// every CommandType and every field of a command have an entry.

/** The level of 0.1.0 (488a078) and of every build before levels: the commands listed at 1. */
export const BASE_LEVEL = 1;

/** The highest level this build applies. */
export const APPLY_LEVEL = 4;

/**
 * From this level on, an entry whose command carries a field added after its type (FIELD_LEVEL) is
 * written in envelope 2 (commands.ts encodeCommand), which every build before it refuses as newer
 * and stops at: builds before it read a command as it came and ignored the fields they did not
 * know, so they had applied such an entry in its older meaning without a word. A command carrying
 * such a field therefore needs this level too (`commandLevel`).
 */
export const ENVELOPE_LEVEL = 4;

const COMMAND_LEVEL: Readonly<Record<CommandType, number>> = {
  'lease.grant': 1, 'lease.release': 1, 'lease.decline': 1, 'lease.expire': 1,
  'dns.set': 1, 'dns.delete': 1, 'node.boot': 1,
  'node.add': 1, 'node.set': 1, 'node.remove': 1, 'node.seen': 1, 'node.accept': 1, 'node.trust': 1, 'node.generation': 1,
  'config.generation': 1,
  'rootfs.commit': 1, 'rootfs.verified': 1, 'rootfs.assign': 1,
  'deploy.trust': 1, 'deploy.synced': 1, 'deploy.job.start': 1, 'deploy.job.resume': 1, 'deploy.job.node': 1, 'deploy.job.end': 1,
  'vip.takeover': 1, 'noop': 1,
  // Level 2: degraded split-pool DHCP's journal merge (cluster/degraded.ts).
  'lease.merge': 2,
};

/** The fields of command type T (all but `type`). */
type FieldsOf<T extends CommandType> = Exclude<keyof Extract<Command, { type: T }>, 'type'>;

/**
 * Every field of every command: BASE_LEVEL for a field of the command's first form, else the level
 * that added it (a field that changes what an existing command does). TypeScript makes the table
 * exactly the fields of `Command`: a field added to a command fails the build until it is listed
 * here with its level, so no field reaches the log that a build of this level or later would not
 * know (commands.ts refuses an envelope-2 entry with a field it does not know).
 */
export const COMMAND_FIELDS = {
  'lease.grant': { ip: 1, mac: 1, clientId: 1, hostname: 1, subnet: 1, leaseMs: 1 },
  'lease.release': { ip: 1, mac: 1 },
  'lease.decline': { ip: 1, mac: 1, quarantineMs: 1 },
  'lease.expire': { ip: 1 },
  'dns.set': { name: 1, rrtype: 1, ttl: 1, data: 1 },
  'dns.delete': { name: 1, rrtype: 1, data: 1 },
  // Level 3: a relayed boot event keeps the time it happened on its member (cluster/boot-relay.ts).
  'node.boot': { mac: 1, event: 1, detail: 1, relay: 1, at: 3 },
  'node.add': { name: 1, mac: 1, ip: 1, profile: 1, group: 1, origin: 1 },
  'node.set': { name: 1, mac: 1, ip: 1, profile: 1, group: 1 },
  // Level 3: a node removal and a deploy job's start cannot both commit (cluster/rootfs-state.ts).
  'node.remove': { name: 1, unlessInJob: 3 },
  'node.seen': { mac: 1, arch: 1, vendorClass: 1 },
  'node.accept': { mac: 1, name: 1, ip: 1, profile: 1, group: 1 },
  'node.trust': { name: 1, hostKey: 1 },
  'node.generation': { name: 1, assigned: 1, running: 1 },
  'config.generation': { generation: 1, hash: 1 },
  'rootfs.commit': { generation: 1, member: 1, source: 1, files: 1, dirs: 1, symlinks: 1, others: 1, hardlinks: 1, bytes: 1 },
  'rootfs.verified': { generation: 1, member: 1, ok: 1, changed: 1 },
  'rootfs.assign': { nodes: 1, generation: 1 },
  'deploy.trust': { node: 1, hostKey: 1 },
  'deploy.synced': { node: 1, generation: 1, ok: 1, exit: 1, bytes: 1 },
  'deploy.job.start': { job: 1, kind: 1, member: 1, nodes: 1, generation: 1, dryRun: 1, files: 1, sources: 1, sha256: 1, dest: 1, then: 1, inventory: 3 },
  'deploy.job.resume': { job: 1, member: 1, run: 1, inventory: 3 },
  'deploy.job.node': { job: 1, node: 1, state: 1, bytes: 1, total: 1, sent: 1, exit: 1, error: 1, installed: 1, run: 1 },
  'deploy.job.end': { job: 1, state: 1, run: 1 },
  'vip.takeover': { node: 1, term: 1, trigger: 1, parts: 1, totalMs: 1 },
  'lease.merge': { node: 1, journal: 1, from: 1, upTo: 1, records: 1 },
  'noop': {},
} as const satisfies { [T in CommandType]: { readonly [F in FieldsOf<T>]: number } };

/**
 * Fields that change what an existing command does, with the level that added them (COMMAND_FIELDS
 * above BASE_LEVEL). A command that carries one needs that level and ENVELOPE_LEVEL; the shell that
 * proposes it sends it without the field while a member is below (`olderForm`), so the command
 * itself never waits for an upgrade.
 */
const FIELD_LEVEL: ReadonlyArray<{ type: CommandType; field: string; level: number }> = Object.entries(COMMAND_FIELDS)
  .flatMap(([type, fields]) => Object.entries(fields as Record<string, number>).filter(([, level]) => level > BASE_LEVEL).map(([field, level]) => ({ type: type as CommandType, field, level })));

/** What each level above BASE_LEVEL adds, in a few words: status and doctor say what waits for it. */
const LEVEL_ADDS: Readonly<Record<number, string>> = {
  2: "lease.merge: a lone member's degraded DHCP journal merged into the leases; the journal is kept on the disk of the member that wrote it meanwhile",
  3: 'relayed boot events keep their own time, and a node removal and a deploy job naming the node refuse each other in the log; meanwhile they go in their older form',
  4: 'the level-3 fields go in entries that older builds refuse instead of applying them without the field; meanwhile those commands go in their older form',
};

/** Whether `field` is one `type` has (COMMAND_FIELDS); false for a type this build does not know. */
export function knownField(type: string, field: string): boolean {
  const fields = Object.hasOwn(COMMAND_FIELDS, type) ? (COMMAND_FIELDS as Readonly<Record<string, Readonly<Record<string, number>>>>)[type]! : undefined;
  return field === 'type' || (fields !== undefined && Object.hasOwn(fields, field));
}

/** The highest level among the fields added after its type that `command` carries (0: none). */
export function addedFieldLevel(command: Pick<Command, 'type'>): number {
  let level = 0;
  for (const f of FIELD_LEVEL) if (f.type === command.type && (command as Record<string, unknown>)[f.field] !== undefined) level = Math.max(level, f.level);
  return level;
}

/**
 * The level a member needs to apply `command` as this build writes it (types this build does not
 * know: Infinity): its type's, and with a field added after its type, that field's and
 * ENVELOPE_LEVEL (the envelope it goes in).
 */
export function commandLevel(command: Pick<Command, 'type'>, table: Readonly<Record<string, number>> = COMMAND_LEVEL): number {
  const base = Object.hasOwn(table, command.type) ? table[command.type]! : Infinity;
  const added = addedFieldLevel(command);
  return added === 0 ? base : Math.max(base, added, ENVELOPE_LEVEL);
}

/**
 * The level an entry in envelope 1 needs (written by a build before ENVELOPE_LEVEL, or by this one
 * without added fields): its type's and its fields'. Builds below it that know the type apply it
 * without stopping, in its older meaning.
 */
export function envelope1Level(command: Pick<Command, 'type'>): number {
  const base = Object.hasOwn(COMMAND_LEVEL, command.type) ? COMMAND_LEVEL[command.type as CommandType] : Infinity;
  return Math.max(base, addedFieldLevel(command));
}

/** `command` without the fields of a level above `level` (FIELD_LEVEL): the form every member of that level applies alike. */
export function olderForm<C extends Command>(command: C, level: number): C {
  const out: Record<string, unknown> = { ...command };
  for (const f of FIELD_LEVEL) if (f.type === command.type && (f.level > level || ENVELOPE_LEVEL > level)) delete out[f.field];
  return out as C;
}

/**
 * `command` as it may be proposed now: with its newer fields while every member applies them
 * (`refusal` null for it), else in its older form. `refusal` is the StateLog's proposal check
 * (absent: no check, a single build).
 */
export function proposable<C extends Command>(command: C, refusal: ((command: Command) => string | null) | undefined): C {
  if (refusal === undefined || refusal(command) === null) return command;
  return olderForm(command, BASE_LEVEL);
}

/** A configured member and the level it reported (null: no level heard from it). */
export interface MemberLevel {
  name: string;
  level: number | null;
  /** Its package version as it reported it (null: never heard from). */
  version: string | null;
}

/** The configured members' levels from their rows (cluster/member-status.ts memberRows). */
export function memberLevels(rows: ReadonlyArray<{ name: string; applyLevel: number | null; version: string | null }>): MemberLevel[] {
  return rows.map((r) => ({ name: r.name, level: r.applyLevel, version: r.version }));
}

/** The daemon's proposal check: null for a command every version applies, else levelRefusal over `rows()` (built only then). */
export function proposalCheck(rows: () => ReadonlyArray<{ name: string; applyLevel: number | null; version: string | null }>): (command: Pick<Command, 'type'>) => string | null {
  return (command) => (commandLevel(command) <= BASE_LEVEL ? null : levelRefusal(command, memberLevels(rows())));
}

/** The level every member can apply: the lowest reported, BASE_LEVEL for a member without one. */
export function clusterLevel(members: readonly MemberLevel[]): number {
  return Math.min(...members.map((m) => m.level ?? BASE_LEVEL));
}

/**
 * Why `command` must not be proposed now (null: it may): a member cannot apply it. Names each
 * such member with what it runs, and what to do.
 */
export function levelRefusal(command: Pick<Command, 'type'>, members: readonly MemberLevel[], table: Readonly<Record<string, number>> = COMMAND_LEVEL): string | null {
  const need = commandLevel(command, table);
  const behind = members.filter((m) => (m.level ?? BASE_LEVEL) < need);
  if (behind.length === 0) return null;
  const who = behind.map((m) => m.version === null
    ? `${m.name} (not heard from since this node started: counted as level ${BASE_LEVEL})`
    : `${m.name} (lanha ${m.version}, apply level ${m.level ?? `${BASE_LEVEL}: a version before apply levels`})`).join(', ');
  return `a '${command.type}' entry needs apply level ${need} on every member, and ${who} cannot apply it: upgrade ${behind.length === 1 ? 'that member' : 'those members'} to a lanha of apply level ${need} or later (lanctl status shows each member's level), then try again`;
}

/** The error for a committed entry this build cannot decode or apply: it must stop applying, not skip it. */
export function unknownEntryError(index: number, detail: string, type: string | null): string {
  const what = type === null ? detail : `a '${type}' command, which this lanha (apply level ${APPLY_LEVEL}) does not know`;
  return `entry ${index} cannot be applied: ${what}. The leader runs a newer lanha; skipping the entry would make this member's state differ from the others', so it stops here. `
    + `Upgrade this member to the version the other members run (lanctl status on another member shows each member's version and apply level), then start it: it applies the entry and catches up`;
}

/** A committed entry this build cannot apply: the member stops applying (fenced), it does not skip it. */
export class EntryTooNewError extends LanhaError {
  constructor(message: string) {
    super('unavailable', message);
  }
}

/** Commands this member would propose but holds back for other members' levels. */
export interface LevelHold {
  /** The levels held back: from the lowest member's level + 1 up to this member's own. */
  from: number;
  to: number;
  /** The members below `to`: never heard from (version null) or reporting a lower level. */
  behind: MemberLevel[];
}

/** What the members' levels hold back on a member of level `own` (null: nothing, every member is at `own` or above). */
export function levelHold(members: readonly MemberLevel[], own: number = APPLY_LEVEL): LevelHold | null {
  const low = clusterLevel(members);
  if (low >= own) return null;
  return { from: low + 1, to: own, behind: members.filter((m) => (m.level ?? BASE_LEVEL) < own) };
}

/** One line: which commands wait, for which members and why, and what lets them go. */
export function levelHoldText(hold: LevelHold): string {
  const levels = [];
  for (let l = hold.from; l <= hold.to; l++) levels.push(LEVEL_ADDS[l] === undefined ? `level ${l}` : `level ${l} (${LEVEL_ADDS[l]})`);
  const unheard = hold.behind.filter((m) => m.version === null);
  const older = hold.behind.filter((m) => m.version !== null);
  const why = [
    ...unheard.map((m) => `${m.name} has sent no report since this node started (down, unreachable, or a version without member reports), so it counts as level ${BASE_LEVEL}`),
    ...older.map((m) => `${m.name} runs lanha ${m.version} at apply level ${m.level ?? `${BASE_LEVEL} (a version before apply levels)`}`),
  ];
  const cure = [
    ...(unheard.length === 0 ? [] : [`start or reach ${unheard.map((m) => m.name).join(' and ')} (lanctl status there; its service, the network to it)`]),
    ...(older.length === 0 ? [] : [`upgrade ${older.map((m) => m.name).join(' and ')} (README, "Upgrading a cluster")`]),
  ];
  return `commands of apply ${levels.join(', ')} are not proposed: ${why.join('; ')}. They go by themselves once every member reports ${hold.from === hold.to ? `level ${hold.to}` : 'their level'}: ${cure.join(', and ')}`;
}

/** What the entries of one level above BASE_LEVEL in the applied log are, for a rollback. */
export interface LogLevelSpan {
  level: number;
  /** The first and the last applied entry that needs this level. */
  first: number;
  last: number;
  /** Entries in envelope 1 with a field added after their type (a level-3 build wrote them): builds below apply them without stopping. */
  silent: boolean;
}

/**
 * The levels the entries this member applied since its state was loaded need (the entries after
 * its snapshot at a start, and every one it applied since): what a build of a lower level would be
 * handed if this member were rolled back onto its state directory. Not state: neither hashed nor
 * in the snapshot. No I/O.
 */
export class LogLevels {
  readonly #spans = new Map<number, LogLevelSpan>();

  /** An applied entry and the level it needs; `silent`: envelope 1 with a field added after its type. */
  note(index: number, level: number, silent: boolean): void {
    if (level <= BASE_LEVEL || !Number.isFinite(level)) return;
    const span = this.#spans.get(level);
    if (span === undefined) this.#spans.set(level, { level, first: index, last: index, silent });
    else { span.last = Math.max(span.last, index); span.silent ||= silent; }
  }

  /** The spans, highest level first (empty: every entry applies on any build). */
  spans(): LogLevelSpan[] {
    return [...this.#spans.values()].sort((a, b) => b.level - a.level);
  }
}

/** The `logLevel` of a member's status: what its applied log needs, and its snapshot index. */
export interface LogLevelStatus {
  spans: LogLevelSpan[];
  snapshotIndex: number;
}

/**
 * One line for status and doctor: which level the log this member applied needs since which index,
 * what builds below it do with those entries, and when (if ever) it can be rolled back: once its
 * snapshot is past the last such entry, a build starts from the snapshot and applies only what
 * follows it. Null when nothing above BASE_LEVEL was applied.
 */
export function logLevelText(s: LogLevelStatus): string | null {
  const top = s.spans[0];
  if (top === undefined) return null;
  const parts = s.spans.map((span) => {
    const stops = span.level >= ENVELOPE_LEVEL
      ? `builds below level ${span.level} stop at them (APPLY STOPPED; 0.1.0 exits)`
      : span.silent
        ? `builds below level ${span.level} apply them WITHOUT stopping, in their older meaning, their state then differing from the other members' (they were written before level ${ENVELOPE_LEVEL})`
        : `builds below level ${span.level} stop at them (APPLY STOPPED; 0.1.0 exits)`;
    return `level ${span.level} in entries ${span.first}..${span.last}: ${stops}`;
  });
  const last = Math.max(...s.spans.map((x) => x.last));
  const down = s.snapshotIndex >= last
    ? `its snapshot (index ${s.snapshotIndex}) is past them: a build of a lower level starts on this member's state from that snapshot and is handed none of them`
    : `rolling this member below level ${Math.min(...s.spans.map((x) => x.level))} is safe only once its snapshot is past index ${last} (now at ${s.snapshotIndex}; one is taken every cluster.snapshotEntries entries applied, or now with lanctl raft snapshot on this member; lanctl status shows it): a build then starts from the snapshot and is handed none of them, while a member of that level takes no newer entry (the leader holds them back)`;
  return `the log this member applied needs apply level ${top.level} since index ${top.first} (${parts.join('; ')}); ${down}`;
}
