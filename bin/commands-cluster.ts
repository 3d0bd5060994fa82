import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode, LanhaError } from '../lib/errors.js';
import { loadValidConfig, configFile, type CliIo, type ParsedArgs } from './cli.js';

// `lanctl cluster rejoin`: the operator's statement that this node replaces a member of a cluster
// that exists, whose state was lost (a dead SD card or disk, a reinstall): the member file says
// `rebuilding` before the first start, so the node neither votes nor campaigns until a leader has
// caught it up, whatever it hears (cluster/raft/README.md, "A member with no state").

/** Raft state on the disk: a hard state, a snapshot or a WAL segment in `dir`. */
function hasRaftState(dir: string): boolean {
  if (!existsSync(dir)) return false;
  const names = readdirSync(dir);
  if (names.includes('hardstate') || names.some((n) => n.startsWith('snapshot-'))) return true;
  const wal = join(dir, 'wal');
  return existsSync(wal) && readdirSync(wal).some((n) => n.endsWith('.wal'));
}

/**
 * Marks the member with state directory `stateDir` as rejoining (member file `rebuilding`).
 * Returns what it did, for the operator; refuses (LanhaError) while the daemon runs, or when the
 * node is a member with its Raft state (it votes from that state: nothing to rebuild).
 */
export async function markRejoin(stateDir: string): Promise<string> {
  const { memberFile, raftDir, readMemberFile, writeMemberFile } = await import('../cluster/raft-state-log.js');
  const file = memberFile(stateDir);
  const dir = raftDir(stateDir);
  const { lockOwner } = await import('../cluster/raft/wal.js');
  const pid = lockOwner(dir);
  if (pid !== undefined) throw new LanhaError('unavailable', `lanha runs on ${stateDir} (process ${pid}, ${join(dir, 'LOCK')}): stop it first (systemctl stop lanha), then run this again`, ExitCode.failure);
  const now = readMemberFile(file);
  if (now === 'rebuilding') return `${file} already says rebuilding: at its next start this member neither votes nor campaigns until a leader has caught it up\n`;
  if ((now === 'member' || now === undefined) && hasRaftState(dir)) {
    throw new LanhaError('exists',
      `${dir} holds this member's Raft state: it votes from that state, there is nothing to rejoin. To rebuild it after damage, move that directory aside (mv ${dir} ${dir}.damaged): it then rebuilds by itself`,
      ExitCode.failure);
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  writeMemberFile(file, 'rebuilding');
  return `wrote ${file}: rebuilding. At its next start this member rejoins its cluster as a rebuilt member: it neither votes nor campaigns `
    + 'until a leader has caught it up (log line raft.rebuilt; lanctl status shows REBUILDING until then). A leader must be running: '
    + 'if every member lost its state, remove this file on every member instead to start a new, empty cluster\n';
}

export async function clusterRejoinRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"`, ExitCode.usage);
  const file = configFile(args.values);
  const config = await loadValidConfig(file);
  if ((config.cluster?.members.length ?? 0) < 2) {
    throw new LanhaError('usage', `${file} has no cluster of two or more members: a single node has no peer to rebuild from (restore ${config.node.stateDir} from a backup instead)`, ExitCode.usage);
  }
  const stateDir = config.node.stateDir;
  io.out(await markRejoin(stateDir));
  return ExitCode.ok;
}
