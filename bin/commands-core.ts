import { degradedText, type DegradedView } from '../services/dhcp/degraded-config.js';
import { realpathSync } from 'node:fs';
import { formatWallSteps, type WallStepWatch } from '../lib/clock-step.js';
import { resolve } from 'node:path';
import { ExitCode, LanhaError } from '../lib/errors.js';
import { powerSummary } from '../cluster/power.js';
import type { LanhaConfig } from '../config/index.js';
import { formatIpv4 } from '../lib/ipv4.js';
import { linkLiveness, raftTimers, timerLimits, timerSource } from '../cluster/timers.js';
import { callDaemonOk } from '../lib/control-client.js';
import { formatDuration, formatTable } from '../lib/table.js';
import { resolveSocket, configFile, type CliIo, type ParsedArgs } from './cli.js';
import { holdEarlySignals, type EarlySignals } from './early-signals.js';
import { formatRaftStatus, type RaftStatusBody } from '../cluster/raft/status-text.js';
import { formatEtcdStatus, type EtcdStatusBody } from '../cluster/etcd/status-text.js';
import { formatNtpStatus } from '../services/ntp/status-text.js';
import { formatClientModes, formatPoolUse, type SubnetClients } from '../services/dhcp/pool-text.js';
import { formatRogueStatus, type RogueStatusBody } from '../services/dhcp/rogue-text.js';
import type { SubnetUse } from '../services/dhcp/allocator.js';
import type { MemberRow } from '../cluster/member-status.js';
import { levelHold, levelHoldText, memberLevels } from '../cluster/apply-level.js';
import { describeAckAudit, type AckAuditSummary } from '../cluster/ack-audit.js';

// serve, config check, status.

export async function serveRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const early = holdEarlySignals();
  try {
    return await serve(args, io, early);
  } finally {
    early.release();
  }
}

async function serve(args: ParsedArgs, io: CliIo, early: EarlySignals): Promise<number> {
  const file = configFile(args.values);
  const logFormat = args.values['log-format'];
  if (logFormat !== undefined && logFormat !== 'text' && logFormat !== 'json') {
    throw new LanhaError('usage', `--log-format ${String(logFormat)}: give text or json`, ExitCode.usage);
  }
  // The config is read and checked in a child process, as a SIGHUP's is: the schemas (zod, ~95
  // modules, ~7 MiB of V8 heap) load there and go with it, never into the daemon's own heap.
  // The daemon's modules load here, not at the top: a client command (status, deploy ...) starts
  // without them.
  const { loadConfigOffLoop } = await import('../config/load-off-loop.js');
  const loaded = await loadConfigOffLoop(file, { ref: true });
  if (!loaded.ok && loaded.invalid) {
    io.err(`lanctl serve: ${loaded.message}\nNothing was started.\n`);
    return ExitCode.config;
  }
  // A stop signal to the whole group (Ctrl-C, systemd's stop) also ends the check's process, and its
  // end may be seen before this process's own handler has run: a check ended by a signal waits a
  // moment for ours before it counts as a failure.
  if (!loaded.ok && loaded.signal !== undefined && early.stop === null) await new Promise((r) => setTimeout(r, 1_000));
  if (!loaded.ok && early.stop === null) throw new LanhaError('config-unreadable', loaded.message, ExitCode.failure);
  if (!loaded.ok || early.stop !== null) {
    io.err(`lanctl serve: received ${early.stop} while starting; nothing was started.\n`);
    return ExitCode.ok;
  }
  const config = loaded.config;
  // A missing directory or key is the config's (exit 2: systemd does not restart into it); a
  // missing interface may still come up (a USB link), so that one is left to the start (exit 1, retried).
  const { hostProblems, thisMachine } = await import('../config/host-checks.js');
  const fatal = hostProblems(config, thisMachine).filter((p) => !p.mayAppear);
  if (fatal.length > 0) {
    io.err(`lanctl serve: ${file}: ${fatal.length} problem${fatal.length === 1 ? '' : 's'} on this machine:\n${fatal.map((p) => `  ${p.message}\n`).join('')}Nothing was started.\n`);
    return ExitCode.config;
  }
  const { runDaemon } = await import('./daemon.js');
  return runDaemon(config, { logFormat: typeof logFormat === 'string' ? logFormat : undefined, configFile: file, early });
}

/** The Raft timers a cluster runs with (derived from cluster.failoverBudget when given), the pauses they ride out and the peer links' dead-link deadline. */
function timersLine(config: LanhaConfig): string {
  const c = config.cluster;
  if (c === undefined || c.backend !== 'raft') return '';
  const x = raftTimers(c);
  const limits = timerLimits(x);
  const source = timerSource(c);
  const from = source.kind === 'budget' ? ` (from failoverBudget ${source.budgetMs} ms)`
    : source.kind === 'default' ? ` (default: from failoverBudget ${source.budgetMs} ms, the least that rides out pauseTolerance ${c.pauseTolerance} ms)` : '';
  const link = linkLiveness(x);
  return `  timers${from}: heartbeat ${x.heartbeatMs} ms, election timeout ${x.electionMs}-${x.electionMs + x.electionSpreadMs} ms, leader lease ${Math.round(x.leaseMs)} ms; pauses up to ${Math.round(limits.pauseToleranceMs)} ms change nothing\n`
    + `  peer links: pinged after ${link.pingMs} ms idle, closed and redialled after ${link.deadMs} ms silent\n`;
}

/** How the peer links are secured, after reading cluster.tls's files (their problems make the check fail). */
async function peerLinksLine(config: LanhaConfig): Promise<{ ok: boolean; text: string }> {
  const cluster = config.cluster;
  if (cluster === undefined || cluster.backend !== 'raft' || cluster.members.length < 2) return { ok: true, text: '' };
  if (cluster.tls === undefined) return { ok: true, text: cluster.keyFile === undefined ? '' : `  peer security: shared cluster key ${cluster.keyFile}\n` };
  const { clusterTlsMaterial, formatTlsProblems } = await import('../cluster/raft/tls.js');
  const read = clusterTlsMaterial(cluster, config.node.name, Date.now());
  if (!read.ok) return { ok: false, text: `the peer links' TLS files are not usable:\n${formatTlsProblems(read.problems)}` };
  const pinned = Object.keys(read.material.pins).length;
  return { ok: true, text: `  peer security: mutual TLS 1.3, certificate ${cluster.tls.cert} (CA ${cluster.tls.ca})${pinned > 0 ? `, ${pinned} of ${cluster.members.length} members pinned` : ''}\n` };
}

export async function configCheckRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const given = [...args.positionals, ...(typeof args.values['config'] === 'string' ? [args.values['config']] : [])];
  const file = given[0];
  if (file === undefined || given.length > 1) throw new LanhaError('usage', 'give exactly one config file: lanctl config check FILE', ExitCode.usage);
  const { ConfigError, loadConfig } = await import('../config/index.js');
  try {
    const config = loadConfig(file);
    const enabled: string[] = (['dhcp', 'dns', 'tftp', 'ntp', 'vip', 'deploy', 'boot'] as const).filter((k) => config[k] !== undefined);
    const profiles = Object.keys(config.profiles ?? {});
    if (profiles.length > 0) enabled.push(`profiles (${profiles.join(', ')})`);
    if ((config.nodes?.length ?? 0) > 0) enabled.push(`nodes (${config.nodes!.length} to seed the inventory)`);
    if (config.power !== undefined) enabled.push(`power (${powerSummary(config.power)})`);
    const members = config.cluster?.members.map((m) => `${m.name}(${m.role})`).join(', ') ?? 'none (single node)';
    const links = await peerLinksLine(config);
    if (!links.ok) {
      io.err(`${file}: ${links.text}\n`);
      return ExitCode.config;
    }
    // The paths and interfaces it names, asked of this machine: problems when the config is this
    // machine's own (node.address is here), warnings when it is checked elsewhere (a laptop, CI).
    const { hostProblems, isThisMachine, thisMachine } = await import('../config/host-checks.js');
    const host = hostProblems(config, thisMachine);
    const here = isThisMachine(config, thisMachine);
    if (here && host.length > 0) {
      io.err(`${file}: ${host.length} problem${host.length === 1 ? '' : 's'} on this machine:\n${host.map((p) => `  ${p.message}\n`).join('')}`);
      return ExitCode.config;
    }
    const { degradedLine } = await import('../services/dhcp/degraded-config.js');
    io.out(`${file}: ok\n  node: ${config.node.name} (${config.node.role})\n  cluster: ${members}\n${timersLine(config)}${links.text}  enabled: ${enabled.join(', ') || 'nothing'}\n${degradedLine(config)}`);
    const { configWarnings } = await import('../config/warnings.js');
    for (const w of configWarnings(config)) io.out(`WARNING: ${w}\n`);
    if (!here) for (const p of host) io.out(`WARNING: not this machine's config (node.address ${formatIpv4(config.node.address!)} is not an address here), so not an error: ${p.message}\n`);
    if (config.power !== undefined) {
      const { missingPowerPrograms } = await import('../cluster/power-run.js');
      for (const w of missingPowerPrograms(config.power)) io.out(`WARNING: ${w}\n`);
    }
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(`${error.message}\n`);
      return ExitCode.config;
    }
    throw error;
  }
}

interface StatusBody {
  node: string;
  configFile?: string | null;
  role: string;
  version: string;
  uptimeSeconds: number;
  clock?: ReturnType<WallStepWatch['report']>;
  cluster: { mode: string; role: string; leader: string | null; term: number; commitIndex: number } & RaftStatusBody & EtcdStatusBody;
  warnings: string[];
  services: Record<string, { listening: string[] }>;
  members?: MemberRow[];
  ackAudit?: AckAuditSummary;
  control?: { remote: string | null; remoteRefused: number };
}

/** Every member as it reports itself (this one from its own state); '?' where no report came. */
export function formatMembers(rows: readonly MemberRow[] | undefined): string {
  if (rows === undefined || rows.length < 2) return '';
  const v = (x: unknown): string => (x === null || x === undefined ? '?' : String(x));
  return formatTable(['member', 'role', 'term', 'commit', 'applied', 'lag', 'last report', 'clock offset', 'version', 'level', 'config', 'state'], rows.map((r) => [
    r.local ? `${r.name} (here)` : r.name, v(r.role), v(r.term), v(r.commitIndex), v(r.appliedIndex), v(r.lagEntries),
    r.local ? '-' : r.lastContactMs === null ? 'never' : `${(r.lastContactMs / 1000).toFixed(1)} s ago`,
    r.local ? '-' : r.clockOffsetMs === null ? '?' : `${r.clockOffsetMs >= 0 ? '+' : ''}${r.clockOffsetMs} ms${r.offsetMethod === 'one-way' ? ' (one-way)' : ''}`,
    v(r.version), r.applyLevel === null ? (r.reported ? '-' : '?') : String(r.applyLevel), r.configHash === null ? '?' : r.configHash.slice(0, 12),
    r.local ? '-' : r.sameState === true ? 'same' : r.sameState === false ? 'DIFFERS' : '-',
  ])) + (rows.some((r) => !r.reported) ? "'?': no report from that member (down, unreachable, or a version without member reports)\n" : '')
    + (rows.some((r) => r.reported && r.applyLevel === null) ? "level '-': a lanha from before apply levels (it applies level 1; cluster/raft/README.md, \"Apply levels\")\n" : '')
    + formatLevelHold(rows);
}

/** LEVEL HELD: the commands this member holds back for members below its apply level, and why ('' when none). */
export function formatLevelHold(rows: readonly MemberRow[]): string {
  const own = rows.find((r) => r.local)?.applyLevel ?? null;
  const hold = own === null ? null : levelHold(memberLevels(rows), own);
  return hold === null ? '' : `LEVEL HELD: ${levelHoldText(hold)}\n`;
}

interface ForwardCacheStatus { entries: number; bytes: number; maxEntries: number; maxBytes: number; inFlight: number; maxInFlight: number }

/** One line on the DNS forwarding cache, or '' when the node does not forward. */
export function formatForwardCache(dns: unknown): string {
  const f = (dns as { forwardCache?: ForwardCacheStatus | null } | undefined)?.forwardCache;
  if (f === undefined || f === null) return '';
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  return `dns forwarding cache: ${f.entries} of ${f.maxEntries} answers, ${mib(f.bytes)} of ${mib(f.maxBytes)}; ${f.inFlight} of ${f.maxInFlight} queries waiting upstream\n`;
}

/** The daemon's config file when the client was given another one (both resolved), else null. */
export function otherConfig(given: unknown, daemons: string | null | undefined): string | null {
  if (typeof given !== 'string' || typeof daemons !== 'string') return null;
  const real = (path: string): string => { try { return realpathSync(path); } catch { return resolve(path); } };
  return real(given) === real(daemons) ? null : daemons;
}

export async function statusRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const socket = resolveSocket(args.values);
  const body = await callDaemonOk(socket, 'GET', '/v1/status') as StatusBody;
  // Only when the config is what found the socket (not --socket or --remote).
  const viaConfig = args.values['socket'] === undefined && args.values['remote'] === undefined && !process.env['LANHA_REMOTE'];
  const other = viaConfig ? otherConfig(args.values['config'], body.configFile) : null;
  if (other !== null) io.err(`lanctl status: note: the daemon at ${socket} runs ${other} (node ${body.node}), not ${String(args.values['config'])}: two configs name this control socket (node.controlSocket)\n`);
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body, null, 2) + '\n');
    return ExitCode.ok;
  }
  const c = body.cluster;
  io.out(formatTable(['node', 'role', 'cluster', 'leader', 'term', 'commit', 'uptime', 'version'], [[
    body.node, `${body.role}/${c.role}`, c.mode, c.leader ?? '-', String(c.term), String(c.commitIndex), formatDuration(body.uptimeSeconds * 1000), body.version,
  ]]));
  io.out(formatWallSteps(body.clock));
  const members = formatMembers(body.members);
  if (members !== '') io.out('\n' + members);
  const raft = c.backend === 'etcd' ? formatEtcdStatus(c) : formatRaftStatus(c);
  if (raft !== '') io.out('\n' + raft);
  const services = Object.entries(body.services);
  io.out('\n' + (services.length === 0
    ? 'no services enabled\n'
    : formatTable(['service', 'listening'], services.map(([name, s]) => [name, s.listening.join(', ') || '-']))));
  const pools = formatPoolUse((body.services['dhcp'] as { pools?: SubnetUse[] } | undefined)?.pools);
  if (pools !== '') io.out('\n' + pools);
  const modes = formatClientModes((body.services['dhcp'] as { clients?: SubnetClients[] } | undefined)?.clients);
  if (modes !== '') io.out('\n' + modes);
  const degraded = (body.services['dhcp'] as { degraded?: DegradedView } | undefined)?.degraded;
  if (degraded !== undefined) io.out('\n' + degradedText(degraded));
  const rogue = formatRogueStatus((body.services['dhcp'] as { rogue?: RogueStatusBody } | undefined)?.rogue);
  if (rogue !== '') io.out('\n' + rogue);
  const ntp = formatNtpStatus(body.services['ntp']);
  if (ntp !== '') io.out('\n' + ntp);
  const fwd = formatForwardCache(body.services['dns']);
  if (fwd !== '') io.out('\n' + fwd);
  if (body.control?.remote) io.out(`\nremote control (mutual TLS): ${body.control.remote}; ${body.control.remoteRefused} client(s) refused since start\n`);
  if (body.ackAudit !== undefined && body.services['dhcp'] !== undefined) io.out('\n' + describeAckAudit(body.ackAudit) + '\n');
  for (const w of body.warnings) io.out(`\nWARNING: ${w}\n`);
  return ExitCode.ok;
}
