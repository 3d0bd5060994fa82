import { ExitCode } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';

// `lanctl raft snapshot`: the member the daemon runs on takes a snapshot of its applied state now
// and compacts its log behind it, as it does every cluster.snapshotEntries entries. What it is for:
// a member to be rolled back below an apply level is safe only once its snapshot is past the last
// entry of that level (lanctl status, "apply level"); before, one waited for snapshotEntries more
// entries. etcd has `etcdctl snapshot save` (a copy for backup); this one is the member's own.

/** How long the command waits for the daemon: encoding and writing 40,000 leases takes seconds on a loaded machine. */
const SNAPSHOT_REPLY_WAIT_MS = 90_000;

export async function raftSnapshotRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/raft/snapshot', {}, SNAPSHOT_REPLY_WAIT_MS) as { index: number; applied: number; taken: boolean };
  if (args.values['json'] === true) io.out(`${JSON.stringify(body)}\n`);
  else if (body.taken) io.out(`snapshot at index ${body.index} written; the log is compacted behind it\n`);
  else io.out(`the snapshot is at the applied index already (${body.index}): nothing to do\n`);
  return ExitCode.ok;
}
