import { ExitCode, LanhaError, errorMessage } from '../lib/errors.js';
import { callDaemon, callDaemonOk } from '../lib/control-client.js';
import { formatTable } from '../lib/table.js';
import { loadValidConfig, resolveSocket, configFile, type CliIo, type ParsedArgs } from './cli.js';
import { releaseAddress, vipCidr } from '../services/vip/address.js';
import type { FailoverResult } from '../services/vip/failover.js';
import type { ProbeWindowResult } from '../services/ops/gap-window.js';
import { formatParts } from '../services/vip/takeover.js';

// lanctl vip release (no daemon needed: systemd runs it before start and after stop), vip status,
// and failover (asks the leader to hand leadership and the VIP to the other LAN-service node).

export async function vipReleaseRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const file = configFile(args.values);
  const config = await loadValidConfig(file).catch((error: unknown) => {
    throw error instanceof LanhaError ? error : new LanhaError('config-unreadable', errorMessage(error), ExitCode.config);
  });
  if (config.vip === undefined) {
    io.out(`${file} has no vip: block; nothing to release\n`);
    return ExitCode.ok;
  }
  try {
    const outcome = await releaseAddress(config.vip);
    io.out(outcome === 'released'
      ? `released ${vipCidr(config.vip)} from ${config.vip.interface}\n`
      : `${vipCidr(config.vip)} was not on ${config.vip.interface}; nothing to do\n`);
    return ExitCode.ok;
  } catch (error) {
    throw new LanhaError('unavailable', errorMessage(error));
  }
}

interface VipStatusBody {
  address: string;
  interface: string;
  mode: string;
  held: boolean;
  holder: string | null;
  /** Held without a leader lease: degraded DHCP mode (absent from daemons before it). */
  degraded?: boolean;
  since: string | null;
  renewals: number;
  garps: number;
  counters: Record<string, number>;
}

export async function vipStatusRun(args: ParsedArgs, io: CliIo): Promise<number> {
  let body: VipStatusBody;
  try {
    body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/vip') as VipStatusBody;
  } catch (error) {
    if (error instanceof LanhaError && error.code === 'not-found') {
      throw new LanhaError('not-found', 'the VIP is not enabled on this node (no `vip:` block, or a witness)', ExitCode.failure);
    }
    throw error;
  }
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body, null, 2) + '\n');
    return ExitCode.ok;
  }
  io.out(formatTable(['vip', 'interface', 'mode', 'held here', 'holder', 'since', 'renewals', 'garps'], [[
    body.address, body.interface, body.mode, body.held ? (body.degraded === true ? 'yes (degraded)' : 'yes') : 'no', body.holder ?? '-', body.since ?? '-', String(body.renewals), String(body.garps),
  ]]));
  return ExitCode.ok;
}

interface FailoverProgressBody {
  running: boolean;
  phase: string;
  waitingFor: string[];
  elapsedMs: number;
  limitMs: number;
}

const PROGRESS_POLL_MS = 500;
/** The daemon bounds a failover (vip.drainTimeout at most 5 min, then seconds); the CLI waits a little longer. */
const FAILOVER_REPLY_WAIT_MS = 330_000;

/** One line for a change of what the failover waits for, e.g. "waiting 1.5 s (of up to 30 s) for: tftp ...". */
function progressLine(p: FailoverProgressBody): string {
  const limit = p.limitMs > 0 ? ` (of up to ${(p.limitMs / 1000).toFixed(p.limitMs < 10_000 ? 1 : 0)} s)` : '';
  return `${p.phase}: waiting ${(p.elapsedMs / 1000).toFixed(1)} s${limit} for ${p.waitingFor.join('; ') || 'nothing'}\n`;
}

/** While the failover request runs, print what it waits for when that changes (or every 5 s). */
function watchProgress(socket: string, err: (text: string) => void): () => void {
  let stopped = false;
  let last = '';
  let lastAt = 0;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, PROGRESS_POLL_MS));
      if (stopped) return;
      const reply = await callDaemon(socket, 'GET', '/v1/failover', undefined, 2000).catch(() => null);
      const p = reply?.status === 200 ? reply.body as FailoverProgressBody : null;
      if (stopped || p === null || !p.running || p.waitingFor.length === 0) continue;
      const key = `${p.phase}|${p.waitingFor.join('|').replace(/ for [0-9.]+ s/g, '')}`;
      if (key !== last || Date.now() - lastAt >= 5000) {
        err(progressLine(p));
        last = key;
        lastAt = Date.now();
      }
    }
  };
  void loop();
  return () => { stopped = true; };
}

/**
 * This node's probes of the VIP during the failover just run (services/ops/gap-probe.ts), when the
 * daemon has them: the window closes at the last first answer, so they are asked for up to 2 s.
 */
async function probedGaps(socket: string, sinceWall: number): Promise<ProbeWindowResult | null> {
  for (let i = 0; i < 20; i++) {
    const reply = await callDaemon(socket, 'GET', '/v1/events', undefined, 2000).catch(() => null);
    const body = reply?.body as { probing?: boolean; probed?: { transfer?: ProbeWindowResult | null } } | undefined;
    if (body?.probing !== true) return null; // an older daemon, or nothing to probe here
    const p = body.probed?.transfer ?? null;
    if (p !== null && Date.parse(p.at) >= sinceWall) return p;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

export async function failoverRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const to = typeof args.values['to'] === 'string' ? args.values['to'] : undefined;
  const socket = resolveSocket(args.values);
  const stop = watchProgress(socket, (text) => io.err(text));
  let reply;
  const startedWall = Date.now();
  try {
    reply = await callDaemon(socket, 'POST', '/v1/failover', to === undefined ? {} : { to }, FAILOVER_REPLY_WAIT_MS);
  } finally {
    stop();
  }
  if (reply.status < 200 || reply.status >= 300) {
    // A daemon without the VIP service answers 404 with which service is off and why.
    const message = typeof reply.body === 'object' && reply.body !== null && 'error' in reply.body ? String((reply.body as { error: unknown }).error) : `HTTP ${reply.status}`;
    throw new LanhaError(reply.status === 404 ? 'not-found' : 'api-error', message);
  }
  const r = reply.body as FailoverResult;
  const probed = await probedGaps(socket, startedWall);
  if (args.values['json'] === true) {
    io.out(JSON.stringify({ ...r, probed }, null, 2) + '\n');
    return ExitCode.ok;
  }
  io.out(`failover ${r.from} -> ${r.to}: ${r.leader} now leads\n`);
  if (r.elected === true) {
    io.out(`  an election moved leadership to ${r.leader} before the hand-over (the VIP went with it); the VIP gap was not measured here\n`);
  }
  const stalled = r.drainStalled ?? [];
  if (r.elected === true) {
    if (r.drainLeft.length + stalled.length > 0) io.out(`  still running here when leadership moved (not ended by the failover): ${[...r.drainLeft, ...stalled].join('; ')}\n`);
  } else if (r.drainMs > 0 || r.drainLeft.length > 0 || stalled.length > 0) {
    io.out(`  drain: ${r.drainMs} ms while the VIP still served${r.drainLeft.length > 0 ? `; ended with an ERROR: ${r.drainLeft.join('; ')}` : ' (every live transfer finished)'}\n`);
    if (stalled.length > 0) io.out(`  not waited for (the client stopped answering), ended with an ERROR: ${stalled.join('; ')}\n`);
  }
  if (r.elected !== true) io.out(r.gapMs === null
    ? `  VIP gap: unknown (${r.leader} sent no takeover report); ${r.leader} was known here ${r.leaderKnownMs} ms after the release\n`
    : `  VIP gap a LAN client sees: ${formatParts(r.parts, r.gapMs)}\n`);
  if (probed !== null) {
    io.out(`  probed from ${probed.from} to ${probed.target} (first answer after the release): ${probed.gaps.filter((g) => g.protocol !== 'vip').map((g) => `${g.protocol} ${g.seconds === null ? 'no answer' : `${Math.round(g.seconds * 1000)} ms`}`).join(', ')}\n`);
  }
  return ExitCode.ok;
}
