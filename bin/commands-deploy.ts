import { resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { formatTable } from '../lib/table.js';
import type { Job, JobNode } from '../cluster/rootfs-state.js';
import type { JobTimings, LiveProgress } from '../cluster/deploy/jobs.js';
import { formatBytes, progressLine, summaryRows } from '../cluster/deploy/progress-view.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';

// `lanctl rootfs ...`, `lanctl rollback`, `lanctl deploy ...`: rootfs generations and deploy jobs.
// Jobs run in the leader's daemon (they are log entries); this process starts one and follows it:
// one live line per node on a TTY, plain lines otherwise, a summary table at the end. Ctrl-C asks
// the daemon to stop the job's rsync children; the job ends `interrupted`.

const LONG_MS = 30 * 60_000;
const POLL_MS = 300;
/** How long one long poll on a job may wait for a change (the daemon caps it too). */
const WAIT_MS = 20_000;

const short = (id: string | null | undefined): string => (id ? id.slice(0, 12) : '-');

interface GenerationRow {
  id: string; committedAt: number; member: string; source: string; files: number; dirs: number; symlinks: number; hardlinks: number; bytes: number;
  verifiedOn: string[]; storedHere: boolean;
}
interface NodeGenRow { name: string; assigned: string | null; running: string | null; boot: string | null; pinned: boolean }

export async function rootfsCommitRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const dir = args.positionals[0];
  if (dir === undefined || args.positionals.length > 1) throw new LanhaError('usage', 'give exactly one directory: lanctl rootfs commit DIR', ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/rootfs/commit', { dir: resolvePath(dir) }, LONG_MS) as
    { generation: string; created: boolean; counts: { files: number; dirs: number; symlinks: number; hardlinks: number; bytes: number } };
  if (args.values['json'] === true) { io.out(JSON.stringify(body, null, 2) + '\n'); return ExitCode.ok; }
  const c = body.counts;
  io.out(`generation ${body.generation}${body.created ? '' : ' (already stored: same content)'}\n` +
    `  ${c.files} files (${c.hardlinks} hardlinks), ${c.dirs} dirs, ${c.symlinks} symlinks, ${formatBytes(c.bytes)}\n` +
    `deploy it: lanctl deploy rootfs ${short(body.generation)} --to NODES\n`);
  return ExitCode.ok;
}

export async function rootfsListRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/rootfs') as { member: string; generations: GenerationRow[]; nodes: NodeGenRow[] };
  if (args.values['json'] === true) { io.out(JSON.stringify(body, null, 2) + '\n'); return ExitCode.ok; }
  if (body.generations.length === 0) io.out('no generations yet: lanctl rootfs commit DIR\n');
  else io.out(formatTable(['generation', 'committed', 'files', 'size', 'verified on', `on ${body.member}`, 'source'], body.generations.map((g) => [
    short(g.id), new Date(g.committedAt).toISOString().replace(/\.\d+Z$/, 'Z'), String(g.files), formatBytes(g.bytes), g.verifiedOn.join(',') || '-', g.storedHere ? 'yes' : 'no', g.source,
  ])));
  if (body.nodes.length > 0) {
    io.out('\n' + formatTable(['node', 'assigned', 'running', 'boots', 'host key'], body.nodes.map((n) => [
      n.name, short(n.assigned), short(n.running), short(n.boot), n.pinned ? 'pinned' : 'NOT PINNED (lanctl nodes trust)',
    ])));
  }
  return ExitCode.ok;
}

export async function rootfsVerifyRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const generation = args.positionals[0];
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/rootfs/verify', generation === undefined ? {} : { generation }, LONG_MS) as
    { generation: string; member: string; ok: boolean; changes: Array<{ path: string; what: string }> };
  if (body.ok) { io.out(`generation ${short(body.generation)} on ${body.member}: verified, matches its manifest\n`); return ExitCode.ok; }
  io.err(`generation ${short(body.generation)} on ${body.member} changed after commit (${body.changes.length} paths); it will not be deployed:\n` +
    body.changes.slice(0, 50).map((c) => `  ${c.path}: ${c.what}\n`).join('') + (body.changes.length > 50 ? `  ... and ${body.changes.length - 50} more\n` : '') +
    'Commit the tree again: lanctl rootfs commit DIR\n');
  return ExitCode.failure;
}

export async function rollbackRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const to = args.positionals.join(',');
  if (to === '') throw new LanhaError('usage', 'name the nodes or groups: lanctl rollback NODE|GROUP', ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/rollback', { to }) as
    { assigned: Array<{ node: string; from: string; to: string; running?: string | null }>; refused: Array<{ node: string; why: string }> };
  for (const a of body.assigned) {
    // Its boot files name the generation now; a disk synced with another one keeps that until a deploy.
    const disk = a.running !== undefined && a.running !== null && a.running !== a.to
      ? ` (its disk holds ${short(a.running)}: \`lanctl deploy rootfs ${short(a.to)} --to ${a.node}\` puts ${short(a.to)} there)` : '';
    io.out(`${a.node}: ${short(a.from)} -> ${short(a.to)}${disk}\n`);
  }
  for (const r of body.refused) io.err(`${r.node}: ${r.why}; nothing assigned\n`);
  return body.refused.length > 0 ? ExitCode.failure : ExitCode.ok;
}

export async function deployRootfsRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const to = args.values['to'];
  if (typeof to !== 'string') throw new LanhaError('usage', '--to NODES|GROUP is required', ExitCode.usage);
  if (args.positionals.length > 1) throw new LanhaError('usage', `unexpected argument "${args.positionals[1]}"`, ExitCode.usage);
  const socket = resolveSocket(args.values);
  const request: Record<string, unknown> = { to, dryRun: args.values['dry-run'] === true };
  if (args.positionals[0] !== undefined) request['generation'] = args.positionals[0];
  const { job } = await callDaemonOk(socket, 'POST', '/v1/deploy/rootfs', request, LONG_MS) as { job: string };
  if (args.values['detach'] === true) { io.out(args.values['json'] === true ? `${JSON.stringify({ job })}\n` : `job ${job}\n`); return ExitCode.ok; }
  return followJob(socket, job, io, { json: args.values['json'] === true });
}

export async function deployResumeRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const socket = resolveSocket(args.values);
  const { job } = await callDaemonOk(socket, 'POST', '/v1/deploy/resume', args.positionals[0] === undefined ? {} : { job: args.positionals[0] }, LONG_MS) as { job: string };
  if (args.values['detach'] === true) { io.out(args.values['json'] === true ? `${JSON.stringify({ job })}\n` : `job ${job}\n`); return ExitCode.ok; }
  return followJob(socket, job, io, { json: args.values['json'] === true });
}

export async function deployCancelRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const id = args.positionals[0];
  if (id === undefined) throw new LanhaError('usage', 'name the JOB to stop (lanctl deploy jobs lists them)', ExitCode.usage);
  if (args.positionals.length > 1) throw new LanhaError('usage', `unexpected argument "${args.positionals[1]}"`, ExitCode.usage);
  const socket = resolveSocket(args.values);
  const { job } = await callDaemonOk(socket, 'POST', '/v1/deploy/cancel', { job: id }, LONG_MS) as { job: Job };
  if (args.values['json'] === true) { io.out(JSON.stringify(job, null, 2) + '\n'); return ExitCode.ok; }
  printJobEnd(io, job);
  return ExitCode.ok;
}

export async function deployJobsRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const socket = resolveSocket(args.values);
  const id = args.positionals[0];
  if (args.values['follow'] === true) {
    if (id === undefined) throw new LanhaError('usage', 'name the JOB to follow: lanctl deploy jobs JOB --follow (lanctl deploy jobs lists them)', ExitCode.usage);
    return followJob(socket, id, io, { json: args.values['json'] === true, detachOnInterrupt: true });
  }
  if (id !== undefined) {
    const body = await callDaemonOk(socket, 'GET', `/v1/deploy/jobs?job=${encodeURIComponent(id)}`) as { job: Job; timings?: JobTimings };
    if (args.values['json'] === true) { io.out(JSON.stringify(body.timings ? { ...body.job, timings: body.timings } : body.job, null, 2) + '\n'); return ExitCode.ok; }
    io.out(`job ${body.job.id} (${body.job.kind} ${short(body.job.generation)}${body.job.dryRun ? ', dry run' : ''}): ${body.job.state}\n`);
    io.out(formatTable(['node', 'result', 'size', 'sent', 'detail'], summaryRows(body.job)));
    return ExitCode.ok;
  }
  const body = await callDaemonOk(socket, 'GET', '/v1/deploy/jobs') as { jobs: Job[] };
  if (args.values['json'] === true) { io.out(JSON.stringify(body.jobs, null, 2) + '\n'); return ExitCode.ok; }
  if (body.jobs.length === 0) { io.out('no deploy jobs yet\n'); return ExitCode.ok; }
  io.out(formatTable(['job', 'kind', 'generation', 'state', 'nodes', 'by', 'started'], body.jobs.map((j) => [
    j.id, j.kind + (j.dryRun ? ' (dry run)' : ''), short(j.generation), j.state, `${j.nodes.filter((n) => n.state === 'done').length}/${j.nodes.length} done`,
    j.member, new Date(j.startedAt).toISOString().replace(/\.\d+Z$/, 'Z'),
  ])));
  return ExitCode.ok;
}

export async function deployPushRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const to = args.values['to'];
  if (typeof to !== 'string') throw new LanhaError('usage', '--to NODES|GROUP is required', ExitCode.usage);
  if (args.positionals.length === 0) throw new LanhaError('usage', 'name at least one FILE to push', ExitCode.usage);
  const socket = resolveSocket(args.values);
  const request: Record<string, unknown> = { to, files: args.positionals.map((f) => resolvePath(f)) };
  if (typeof args.values['dest'] === 'string') request['dest'] = args.values['dest'];
  if (typeof args.values['then'] === 'string') request['then'] = args.values['then'];
  const { job } = await callDaemonOk(socket, 'POST', '/v1/deploy/push', request, LONG_MS) as { job: string };
  if (args.values['detach'] === true) { io.out(args.values['json'] === true ? `${JSON.stringify({ job })}\n` : `job ${job}\n`); return ExitCode.ok; }
  return followJob(socket, job, io, { json: args.values['json'] === true });
}

export async function nodesTrustRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const node = args.positionals[0];
  if (node === undefined || args.positionals.length > 1) throw new LanhaError('usage', 'name one node: lanctl nodes trust NAME', ExitCode.usage);
  const socket = resolveSocket(args.values);
  const key = await callDaemonOk(socket, 'POST', '/v1/deploy/fetch-key', { node }, 30_000) as
    { node: string; host: string; port: number; hostKey: string; fingerprint: string; status: 'new' | 'same' | 'changed'; pinnedFingerprint?: string };
  io.out(`${key.node} (${key.host}:${key.port}) offers ${key.hostKey.split(' ')[0]} ${key.fingerprint}\n`);
  if (key.status === 'same') { io.out('already pinned: nothing to do\n'); return ExitCode.ok; }
  if (key.status === 'changed' && args.values['replace'] !== true) {
    io.err(`the host key of ${node} CHANGED: pinned ${key.pinnedFingerprint}, offered ${key.fingerprint}. Refused (logged). ` +
      'If the node was reinstalled, check the new fingerprint on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and run again with --replace\n');
    return ExitCode.failure;
  }
  if (args.values['yes'] !== true) {
    if (process.stdin.isTTY !== true) throw new LanhaError('usage', 'no terminal to confirm on: compare the fingerprint out of band, then pass --yes', ExitCode.usage);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`pin this key for ${node}? [y/N] `);
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) { io.out('not pinned\n'); return ExitCode.failure; }
  }
  const body: Record<string, unknown> = { node, hostKey: key.hostKey };
  if (args.values['replace'] === true) body['replace'] = true;
  await callDaemonOk(socket, 'POST', '/v1/deploy/trust', body);
  io.out(`pinned ${key.fingerprint} for ${node}\n`);
  return ExitCode.ok;
}

/**
 * Follows a job until it ends; Ctrl-C cancels it (with `detachOnInterrupt`, the command that started
 * the job is not this one: Ctrl-C only stops following, exit 130). Returns 0 when every node is done.
 * With `json`, no progress lines: the ended job as `lanctl deploy jobs JOB --json` prints it. A daemon
 * lost on the way (stopped, or killed with the leader) is named with the job, which lives on in the log.
 */
export async function followJob(socket: string, id: string, io: CliIo, options: { json?: boolean; detachOnInterrupt?: boolean } = {}): Promise<number> {
  const json = options.json === true;
  const tty = !json && process.stdout.isTTY === true;
  let cancelling = false;
  const onSigint = (): void => {
    if (options.detachOnInterrupt === true) {
      io.err(`\nstopped following job ${id}; it runs on (\`lanctl deploy jobs ${id} --follow\` follows it again, \`lanctl deploy cancel ${id}\` stops it)\n`);
      // The long poll in flight would hold the process up to its wait: nothing more is read or written.
      process.exit(130);
    }
    if (cancelling) return;
    cancelling = true;
    io.err('\nstopping the job (its rsync processes are ended by PID) ...\n');
    void callDaemonOk(socket, 'POST', '/v1/deploy/cancel', { job: id }, LONG_MS).catch(() => undefined);
  };
  process.on('SIGINT', onSigint);
  const printed = new Map<string, string>();
  let drawn = 0;
  let job: Job | undefined;
  let timings: JobTimings | undefined;
  try {
    if (!json) io.out(`job ${id}\n`);
    let version: number | undefined;
    for (;;) {
      // A long poll: the daemon answers when the job changed (an entry, live progress) or after WAIT_MS.
      const wait = version === undefined ? '' : `&after=${version}&waitMs=${WAIT_MS}`;
      const body = await callDaemonOk(socket, 'GET', `/v1/deploy/jobs?job=${encodeURIComponent(id)}${wait}`, undefined, WAIT_MS + 30_000).catch((error: unknown) => {
        if (!(error instanceof LanhaError) || error.code !== 'daemon-unreachable') throw error;
        throw new LanhaError(error.code, `lost the daemon while following job ${id} (${error.message.replace(/\.$/, "")}). The job is in the replicated log: ` +
          `\`lanctl deploy jobs ${id}\` on any member shows it; if the leader went down with it, the new leader marks it interrupted and \`lanctl deploy resume ${id}\` there completes it`, error.exitCode);
      }) as { job: Job; live: LiveProgress[]; active: boolean; version?: number; timings?: JobTimings };
      job = body.job;
      timings = body.timings;
      const live = new Map(body.live.map((l) => [l.node, l]));
      if (tty) {
        if (drawn > 0) io.out(`\x1b[${drawn}A`);
        for (const n of job.nodes) io.out(`\x1b[2K${progressLine(n, live.get(n.name))}\n`);
        drawn = job.nodes.length;
      } else if (!json) {
        for (const n of job.nodes) {
          const line = plainState(n, live.get(n.name));
          if (printed.get(n.name) !== line) { printed.set(n.name, line); io.out(`${progressLine(n, live.get(n.name))}\n`); }
        }
      }
      if (job.state !== 'running' && !body.active) break;
      // An older daemon without long polls: poll.
      if (body.version === undefined) await new Promise((r) => setTimeout(r, POLL_MS));
      version = body.version;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (json) {
    io.out(JSON.stringify(timings ? { ...job, timings } : job, null, 2) + '\n');
  } else {
    io.out('\n');
    printJobEnd(io, job);
  }
  return job.state === 'done' ? ExitCode.ok : ExitCode.failure;
}

/** The summary table of an ended job and its last line (with the resume command when it did not complete). */
function printJobEnd(io: CliIo, job: Job): void {
  io.out(formatTable(['node', 'result', 'size', 'sent', 'detail'], summaryRows(job)));
  io.out(`job ${job.id}: ${job.state}${job.state === 'interrupted' || job.state === 'failed' ? ` — \`lanctl deploy resume ${job.id}\` completes it` : ''}\n`);
}

/** What a non-TTY prints a new line for: state changes and each 25 % step. */
function plainState(n: JobNode, live: LiveProgress | undefined): string {
  const pct = live?.progress?.percent;
  return `${n.state}:${live?.phase ?? ''}:${pct === undefined ? '' : Math.floor(pct / 25)}`;
}
