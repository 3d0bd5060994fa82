import { closeSync, openSync, readSync } from 'node:fs';
import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemon, callDaemonOk } from '../lib/control-client.js';
import { formatDuration, formatTable } from '../lib/table.js';
import { formatIpv4 } from '../lib/ipv4.js';
import { archText } from '../services/dhcp/arch.js';
import type { NodeDetail, NodeEvent, NodeRow } from '../cluster/nodes-view.js';
import type { NodeJson, PendingJson, ShowJson } from '../cluster/inventory-api.js';
import { fieldFormProblem } from '../cluster/inventory-check.js';
import type { ImportFile, ImportNode } from '../cluster/inventory-import.js';
import { POWER_ACTIONS } from '../cluster/power.js';
import type { PowerReply } from '../cluster/power-api.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';

// `lanctl nodes`: compute nodes and their boot progress (inventory, reservations, leases, TFTP
// fetches) from the replicated state, so any node of the site gives the same answer; and the
// inventory's writes (add/set/remove/accept/import), which go to the leader through the control API.

const what = (e: NodeEvent | null): string => (e === null ? 'never seen' : e.detail === null ? e.event : `${e.event} ${e.detail}`);
const ago = (s: number | null): string => (s === null ? '-' : `${formatDuration(Math.max(0, s) * 1000)} ago`);
const gen = (n: Pick<NodeRow, 'assignedGeneration' | 'runningGeneration'>): string => {
  if (n.assignedGeneration === null && n.runningGeneration === null) return '-';
  const short = (g: string | null): string => (g === null ? '-' : g.slice(0, 12));
  return n.assignedGeneration === n.runningGeneration ? short(n.runningGeneration) : `${short(n.assignedGeneration)} (running ${short(n.runningGeneration)})`;
};


/** The fields given, refused as usage (exit 2) when one is not of its form (cluster/inventory-check.ts). */
function fields(values: ParsedArgs['values'], keys: readonly string[], positional: { name?: string; mac?: string } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (typeof values[k] === 'string') out[k] = values[k];
  const problem = fieldFormProblem({ ...out, ...positional });
  if (problem !== null) throw new LanhaError('usage', problem, ExitCode.usage);
  return out;
}

function describe(n: NodeJson): string {
  return `${n.name}  ${n.mac}  ${n.ip ?? 'pool address'}${n.profile === null ? '' : `  profile ${n.profile}`}${n.group === null ? '' : `  group ${n.group}`}`;
}

export async function nodesRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; for one node: lanctl nodes show NAME or lanctl nodes --mac M`, ExitCode.usage);
  const socket = resolveSocket(args.values);
  const mac = args.values['mac'];
  if (typeof mac === 'string') {
    const body = await callDaemonOk(socket, 'GET', `/v1/nodes?mac=${encodeURIComponent(mac)}`) as { node: NodeDetail };
    if (args.values['json'] === true) {
      io.out(JSON.stringify(body.node, null, 2) + '\n');
      return ExitCode.ok;
    }
    const n = body.node;
    io.out(`${n.name === null ? '' : `${n.name}  `}${n.mac}  ${n.ip ?? '-'}  ${n.hostname ?? '-'}${n.reserved ? '  (reserved)' : ''}  lease ${n.lease}` +
      `${n.leaseExpiresInS === null ? '' : `, ends in ${formatDuration(n.leaseExpiresInS * 1000)}`}\n\n`);
    io.out(n.events.length === 0 ? 'no events\n' : formatTable(['at', 'event', 'detail'], n.events.map((e) => [e.at, e.event, e.detail ?? '-'])));
    return ExitCode.ok;
  }
  const body = await callDaemonOk(socket, 'GET', '/v1/nodes') as { nodes: NodeRow[] };
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body.nodes, null, 2) + '\n');
    return ExitCode.ok;
  }
  if (body.nodes.length === 0) {
    io.out('no nodes (no inventory entries, reservations, leases or boot events yet; add one: lanctl nodes add NAME --mac M)\n');
    return ExitCode.ok;
  }
  io.out(formatTable(['name', 'mac', 'ip', 'profile', 'group', 'generation', 'lease', 'last', 'when', 'boot events'], body.nodes.map((n) => [
    n.name ?? (n.hostname === null ? '-' : `(${n.hostname})`), n.mac, `${n.ip ?? '-'}${n.reserved ? ' (r)' : ''}`,
    n.profile === null ? '-' : `${n.profile}${n.profileUnknown ? ' (unknown!)' : ''}`, n.group ?? '-', gen(n),
    n.lease, what(n.last), ago(n.lastAgoS), String(n.bootEvents),
  ])));
  if (body.nodes.some((n) => n.name === null)) io.out('(name) = not in the inventory: a lease or reservation host name; lanctl nodes add NAME --mac M makes it a node\n');
  if (body.nodes.some((n) => n.profileUnknown)) io.out('(unknown!) = no `profiles:` entry has that name: its boot files cannot be rendered (the last good one is served, else an error) until one has it or the node gets another (lanctl nodes set NAME --profile P)\n');
  return ExitCode.ok;
}


/** A write's result: the node as JSON, or one line saying what was done. */
function printWritten(io: CliIo, json: boolean, verb: string, node: NodeJson): number {
  io.out(json ? JSON.stringify(node, null, 2) + '\n' : `${verb} ${describe(node)}\n`);
  return ExitCode.ok;
}

export async function nodesAddRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [name, extra] = args.positionals;
  if (name === undefined || typeof args.values['mac'] !== 'string' || extra !== undefined) {
    throw new LanhaError('usage', 'give NAME and --mac, e.g. lanctl nodes add rack1 --mac 52:54:00:12:34:56 --ip 10.0.0.21', ExitCode.usage);
  }
  const dryRun = args.values['dry-run'] === true;
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/nodes/add', { name, ...fields(args.values, ['mac', 'ip', 'profile', 'group'], { name }), dryRun }) as { node?: NodeJson };
  const json = args.values['json'] === true;
  if (dryRun) { io.out(json ? JSON.stringify(body, null, 2) + '\n' : `ok: ${name} can be added (dry run, nothing changed)\n`); return ExitCode.ok; }
  return printWritten(io, json, 'added', body.node!);
}

export async function nodesSetRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [name, extra] = args.positionals;
  if (name === undefined || extra !== undefined) throw new LanhaError('usage', 'give NAME and what to change, e.g. lanctl nodes set rack1 --ip 10.0.0.22', ExitCode.usage);
  const change: Record<string, string | null> = fields(args.values, ['mac', 'ip', 'profile', 'group']);
  if (Object.keys(change).length === 0) throw new LanhaError('usage', 'nothing to change: give --mac, --ip, --profile or --group', ExitCode.usage);
  for (const k of ['ip', 'profile', 'group']) if (change[k] === 'none' || change[k] === '') change[k] = null;
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/nodes/set', { name, ...change }) as { node: NodeJson };
  return printWritten(io, args.values['json'] === true, 'changed', body.node);
}

export async function nodesRemoveRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [name, extra] = args.positionals;
  if (name === undefined || extra !== undefined) throw new LanhaError('usage', 'give the node\'s NAME: lanctl nodes remove rack1', ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/nodes/remove', { name }) as { removed: NodeJson };
  return printWritten(io, args.values['json'] === true, 'removed', body.removed);
}

export async function nodesPendingRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; to accept one: lanctl nodes accept MAC NAME`, ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/nodes/pending') as { now: string; pending: PendingJson[] };
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body.pending, null, 2) + '\n');
    return ExitCode.ok;
  }
  if (body.pending.length === 0) {
    io.out('no pending MACs (unknown machines that ask to netboot show here)\n');
    return ExitCode.ok;
  }
  const now = Date.parse(body.now);
  io.out(formatTable(['mac', 'first seen', 'last seen', 'arch', 'vendor class', 'requests'], body.pending.map((p) => [
    p.mac, p.firstSeen, `${formatDuration(Math.max(0, now - Date.parse(p.lastSeen)))} ago`, p.arch === null ? '-' : archText(p.arch), p.vendorClass ?? '-', String(p.count),
  ])));
  io.out(`accept one: lanctl nodes accept ${body.pending[0]!.mac} NAME [--ip A] [--profile P]\n`);
  return ExitCode.ok;
}

export async function nodesAcceptRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [mac, name, extra] = args.positionals;
  if (mac === undefined || name === undefined || extra !== undefined) throw new LanhaError('usage', 'give MAC and NAME: lanctl nodes accept 52:54:00:12:34:56 rack7 [--ip A]', ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/nodes/accept', { mac, name, ...fields(args.values, ['ip', 'profile', 'group'], { mac, name }) }) as { node: NodeJson };
  return printWritten(io, args.values['json'] === true, 'accepted', body.node);
}

const ms = (n: number | null): string => (n === null ? '' : n < 1000 ? `+${n}ms` : `+${(n / 1000).toFixed(n < 10_000 ? 2 : 1)}s`);

export async function nodesShowRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [name, extra] = args.positionals;
  if (name === undefined || extra !== undefined) throw new LanhaError('usage', 'give the node\'s NAME: lanctl nodes show rack1 [--timeline]', ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'GET', `/v1/nodes/show?name=${encodeURIComponent(name)}`) as ShowJson;
  if (args.values['json'] === true) {
    io.out(JSON.stringify(args.values['timeline'] === true ? body : { ...body, timeline: undefined }, null, 2) + '\n');
    return ExitCode.ok;
  }
  const n = body.node;
  const d = body.detail;
  const rows: Array<[string, string]> = [
    ['name', n.name], ['mac', n.mac], ['ip', n.ip ?? `pool address${d?.ip === null || d === null ? '' : ` (now ${d.ip})`}`],
    ['profile', n.profile === null ? '-' : `${n.profile}${body.profileUnknown ? ' (unknown: no profiles: entry has this name)' : ''}`],
    ['group', n.group ?? '-'], ['host key', n.hostKey === null ? 'not pinned (lanctl nodes trust NAME)' : `${n.hostKey.slice(0, 40)}...`],
    ['generation', `assigned ${n.assignedGeneration ?? '-'}, running ${n.runningGeneration ?? '-'}`],
    ['lease', d === null ? 'none' : `${d.lease}${d.leaseExpiresInS === null ? '' : `, ends in ${formatDuration(d.leaseExpiresInS * 1000)}`}`],
    ['last', d === null ? 'never seen' : `${what(d.last)} (${ago(d.lastAgoS)})`], ['added', n.addedAt], ['changed', n.changedAt],
  ];
  io.out(rows.map(([k, v]) => `${k.padEnd(11)}${v}`).join('\n') + '\n');
  if (args.values['timeline'] === true) {
    io.out('\n');
    io.out(body.timeline.length === 0 ? 'no boot events yet\n' : formatTable(['at', 'delta', 'since boot', 'step', 'detail'], body.timeline.map((s) => [
      s.at, ms(s.deltaMs), ms(s.sinceBootMs) || '+0ms', s.step, s.detail ?? '-',
    ])));
  }
  return ExitCode.ok;
}

/** The largest import file read (a dnsmasq config or hosts file for 10,000 nodes is well under 1 MiB). */
export const IMPORT_BYTES_MAX = 8 << 20;

/** Reads each file, at most IMPORT_BYTES_MAX octets (a device like /dev/zero or a huge log would never end). */
function readFiles(paths: readonly string[]): ImportFile[] {
  return paths.map((path) => {
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      const buffer = Buffer.alloc(IMPORT_BYTES_MAX + 1);
      let length = 0;
      for (let n = -1; n !== 0 && length < buffer.length;) {
        n = readSync(fd, buffer, length, buffer.length - length, null);
        length += n;
      }
      if (length > IMPORT_BYTES_MAX) throw new LanhaError('usage', `${path} is larger than ${IMPORT_BYTES_MAX >> 20} MiB: not a dnsmasq config or hosts file; split it or give the right file`, ExitCode.failure);
      return { name: path, text: buffer.subarray(0, length).toString('utf8') };
    } catch (error) {
      if (error instanceof LanhaError) throw error;
      throw new LanhaError('io', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}): give a dnsmasq config or hosts file`, ExitCode.failure);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  });
}

/** Imports parsed nodes one by one (or only checks them); per node: null = ok, else the daemon's refusal. */
async function sendImports(socket: string, nodes: readonly ImportNode[], dryRun: boolean, existing: ReadonlyMap<string, NodeJson>): Promise<Map<ImportNode, string | null>> {
  const out = new Map<ImportNode, string | null>();
  for (const n of nodes) {
    const have = existing.get(n.name);
    if (have !== undefined && have.mac === n.mac && have.ip === (n.ip === undefined ? null : formatIpv4(n.ip))) { out.set(n, 'unchanged'); continue; }
    const reply = await callDaemon(socket, 'POST', '/v1/nodes/add', { name: n.name, mac: n.mac, ...(n.ip === undefined ? {} : { ip: formatIpv4(n.ip) }), dryRun });
    const error = reply.status === 200 ? null : String((reply.body as { error?: unknown } | null)?.error ?? `HTTP ${reply.status}`);
    if (reply.status === 409 && error !== null && error.includes('not the leader')) throw new LanhaError('not-leader', error, ExitCode.failure);
    out.set(n, error);
  }
  return out;
}

export async function nodesImportRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length === 0) throw new LanhaError('usage', 'give FILE(s): lanctl nodes import /etc/dnsmasq.d/cluster.conf /etc/hosts', ExitCode.usage);
  const { parseImport } = await import('../cluster/inventory-import.js');
  const parsed = parseImport(readFiles(args.positionals));
  const socket = resolveSocket(args.values);
  const strict = args.values['strict'] === true;
  const dryRun = args.values['dry-run'] === true;
  const existing = new Map(((await callDaemonOk(socket, 'GET', '/v1/nodes/inventory')) as { nodes: NodeJson[] }).nodes.map((n) => [n.name, n]));
  // Strict: check everything first, change nothing if anything is wrong.
  let results = await sendImports(socket, parsed.nodes, true, existing);
  const bad = parsed.lines.some((l) => l.outcome === 'error') || [...results.values()].some((r) => r !== null && r !== 'unchanged');
  const apply = !dryRun && !(strict && bad);
  if (apply) results = await sendImports(socket, parsed.nodes, false, existing);
  const bySource = new Map(parsed.nodes.map((n) => [n.source.split(' ')[0]!, n]));
  const report = parsed.lines.map((l) => {
    if (l.outcome !== 'node') return { ...l, result: l.outcome };
    const node = bySource.get(`${l.file}:${l.line}`)!;
    const r = results.get(node);
    const result = r === 'unchanged' ? 'unchanged' : r !== null && r !== undefined ? 'refused' : apply ? 'imported' : dryRun ? 'ok (dry run)' : 'not imported (--strict)';
    return { ...l, result, message: r !== null && r !== undefined && r !== 'unchanged' ? `${l.message}: ${r}` : r === 'unchanged' ? `${l.message}: already in the inventory as given` : l.message };
  });
  printImport(io, report, args.values['json'] === true, { apply, strict, dryRun, bad });
  const failed = report.some((l) => l.result === 'error' || l.result === 'refused');
  return failed ? ExitCode.failure : ExitCode.ok;
}

function printImport(io: CliIo, report: Array<{ file: string; line: number; text: string; result: string; message: string }>, json: boolean, o: { apply: boolean; strict: boolean; dryRun: boolean; bad: boolean }): void {
  if (json) {
    io.out(JSON.stringify(report.map(({ file, line, text, result, message }) => ({ file, line, text, result, message })), null, 2) + '\n');
    return;
  }
  for (const l of report) io.out(`${l.file}:${l.line}: ${l.result}: ${l.message}\n`);
  const count = (r: string): number => report.filter((l) => l.result === r).length;
  io.out(`${count('imported')} imported, ${count('unchanged')} unchanged, ${count('skipped')} skipped, ${count('error') + count('refused')} failed` +
    `${o.dryRun ? ' (dry run: nothing changed)' : o.strict && o.bad ? ' (--strict: nothing imported because of the failures)' : ''}\n`);
}

/** How long lanctl waits for a power reply: every node's command, `parallel` at a time, each up to power.timeout. */
const POWER_REPLY_WAIT_MS = 30 * 60_000;

export async function nodesPowerRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [action, ...names] = args.positionals;
  if (action === undefined || !(POWER_ACTIONS as readonly string[]).includes(action)) {
    throw new LanhaError('usage', `give the action first (${POWER_ACTIONS.join(', ')}), then the nodes: lanctl nodes power cycle rack1 rack2, or --group G, or --all`, ExitCode.usage);
  }
  const group = args.values['group'];
  const all = args.values['all'] === true;
  if (Number(names.length > 0) + Number(typeof group === 'string') + Number(all) !== 1) {
    throw new LanhaError('usage', 'name the nodes one way: NAME..., --group G or --all', ExitCode.usage);
  }
  const reply = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/nodes/power', { action, names, ...(typeof group === 'string' ? { group } : {}), all }, POWER_REPLY_WAIT_MS) as PowerReply;
  if (args.values['json'] === true) io.out(JSON.stringify(reply, null, 2) + '\n');
  else {
    const first = (text: string): string => text.split('\n')[0]!.slice(0, 100);
    io.out(formatTable(['node', 'action', 'result', 'exit', 'output', 'took'], reply.results.map((r) => [
      r.node, reply.action, r.result, r.exitCode === null ? (r.signal ?? '-') : String(r.exitCode),
      r.result === 'ok' ? (first(r.output) || '-') : (first(r.error) || first(r.output) || '-'), formatDuration(r.ms),
    ])));
  }
  const failed = reply.results.filter((r) => r.result !== 'ok').length;
  if (failed > 0 && args.values['json'] !== true) io.err(`${failed} of ${reply.results.length} failed; the daemon's log has each command's error (event power.command)\n`);
  return failed > 0 ? ExitCode.failure : ExitCode.ok;
}
