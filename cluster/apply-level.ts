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
// COMMAND_LEVEL, raise APPLY_LEVEL to it, and say in cluster/raft/README.md ("Apply levels") and in
// LEVEL_ADDS what the level adds. TypeScript makes every CommandType have an entry.

/** The level of 0.1.0 (488a078) and of every build before levels: the commands listed at 1. */
export const BASE_LEVEL = 1;

/** The highest level this build applies. */
export const APPLY_LEVEL = 3;

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

/**
 * Fields that change what an existing command does, with the level that applies them. A command
 * that carries one needs that level; the shell that proposes it sends it without the field while a
 * member is below (`olderForm`), so the command itself never waits for an upgrade.
 */
const FIELD_LEVEL: ReadonlyArray<{ type: CommandType; field: string; level: number }> = [
  // Level 3: a relayed boot event keeps the time it happened on its member (cluster/boot-relay.ts).
  { type: 'node.boot', field: 'at', level: 3 },
  // Level 3: a node removal and a deploy job's start cannot both commit (cluster/rootfs-state.ts).
  { type: 'node.remove', field: 'unlessInJob', level: 3 },
  { type: 'deploy.job.start', field: 'inventory', level: 3 },
  { type: 'deploy.job.resume', field: 'inventory', level: 3 },
];

/** What each level above BASE_LEVEL adds, in a few words: status and doctor say what waits for it. */
const LEVEL_ADDS: Readonly<Record<number, string>> = {
  2: "lease.merge: a lone member's degraded DHCP journal merged into the leases; the journal is kept on the disk of the member that wrote it meanwhile",
  3: 'relayed boot events keep their own time, and a node removal and a deploy job naming the node refuse each other in the log; meanwhile they go in their older form',
};

/** The level a member needs to apply `command` (types this build does not know: Infinity). */
export function commandLevel(command: Pick<Command, 'type'>, table: Readonly<Record<string, number>> = COMMAND_LEVEL): number {
  const base = Object.hasOwn(table, command.type) ? table[command.type]! : Infinity;
  let level = base;
  for (const f of FIELD_LEVEL) if (f.type === command.type && (command as Record<string, unknown>)[f.field] !== undefined) level = Math.max(level, f.level);
  return level;
}

/** `command` without the fields of a level above `level` (FIELD_LEVEL): the form every member of that level applies alike. */
export function olderForm<C extends Command>(command: C, level: number): C {
  const out: Record<string, unknown> = { ...command };
  for (const f of FIELD_LEVEL) if (f.type === command.type && f.level > level) delete out[f.field];
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
