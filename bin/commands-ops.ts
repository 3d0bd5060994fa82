import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemon } from '../lib/control-client.js';
import { parseIpv4 } from '../lib/ipv4.js';
import { parseMac } from '../lib/mac.js';
import { isHostname } from '../lib/scalars.js';
import { formatTable } from '../lib/table.js';
import { loadValidConfig, resolveSocket, type CliIo, configFile, type ParsedArgs } from './cli.js';
import type { DhcpExplain, DnsExplain } from '../services/ops/explain.js';
import type { Finding } from '../services/ops/doctor.js';

// `lanctl explain` (why a client got its answer, or what it would get) and `lanctl doctor` (the
// cross-checks an operator would do by hand). Both read the daemon's GET routes, the same ones the
// status pages render.

function printDhcp(d: DhcpExplain, io: CliIo): void {
  io.out(`${d.simulated ? 'SIMULATED DISCOVER (nothing sent)' : 'DHCP'} ${d.mac}: ${d.decision}\n`);
  if (d.variants) io.out(`  as a BOOTP client: ${d.variants.bootp}\n  with option 80 (Rapid Commit): ${d.variants.rapidCommit}\n`);
  io.out(`  subnet: ${d.subnet.id ?? '-'} (${d.subnet.why})\n`);
  io.out(`  reservation by MAC: ${d.reservation.byMac ?? 'none'}; by client-id: ${d.reservation.byClientId ?? 'none'}\n`);
  for (const n of d.reservation.notes) io.out(`  NOTE: ${n}\n`);
  if (d.lease) io.out(`  lease: ${d.lease.ip} ${d.lease.state}${d.lease.hostname === null ? '' : ` (${d.lease.hostname})`}, client-id ${d.lease.clientId ?? '-'}, committed at log index ${d.lease.index ?? '-'}, ACKed by ${d.lease.ackedBy ?? 'unknown (entry written before the proposer was recorded)'}, ends ${d.lease.expiresAt}\n`);
  io.out(`  boot: ${d.boot.result}\n`);
  if (d.boot.rules.length > 0) io.out('\n' + formatTable(['boot rule', 'matched', 'deciding field'], d.boot.rules.map((r) => [r.rule, r.matched ? 'yes' : 'no', r.deciding])));
  if (d.options.length > 0) io.out('\n' + formatTable(['option', 'name', 'value', 'from'], d.options.map((o) => [String(o.code), o.name, o.value, o.source])));
  if (d.history.length > 0) io.out('\n' + formatTable(['at', 'event', 'detail'], d.history.map((e) => [e.at, e.event, e.detail ?? '-'])));
}

function printDns(d: DnsExplain, io: CliIo): void {
  io.out(`\nDNS ${d.name}: ${d.how}\n`);
  if (d.answers.length > 0) io.out(formatTable(['type', 'ttl', 'data', 'source'], d.answers.map((a) => [a.type, String(a.ttl), a.data, a.source])));
}


export async function explainRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const v = args.values;
  const query = new URLSearchParams();
  if (v['simulate'] === true) {
    if (args.positionals.length > 0) throw new LanhaError('usage', `--simulate takes --mac M, not "${args.positionals[0]}"`, ExitCode.usage);
    const mac = typeof v['mac'] === 'string' ? v['mac'] : undefined;
    if (mac === undefined || parseMac(mac) === null) throw new LanhaError('usage', `--simulate needs --mac M with a MAC address like 52:54:00:aa:bb:cc${mac === undefined ? '' : ` (got "${mac}")`}`, ExitCode.usage);
    const arch = v['arch'];
    if (typeof arch === 'string' && !/^\d{1,5}$/.test(arch)) throw new LanhaError('usage', `--arch ${arch} is not an option 93 number (0 x86 BIOS, 7 x64 UEFI, 11 arm64 UEFI, ...)`, ExitCode.usage);
    query.set('simulate', '1');
    query.set('mac', mac);
    if (typeof arch === 'string') query.set('arch', arch);
    if (typeof v['vendor-class'] === 'string') query.set('vendorClass', v['vendor-class']);
    if (typeof v['user-class'] === 'string') query.set('userClass', v['user-class']);
    if (typeof v['client-id'] === 'string') query.set('clientId', v['client-id']);
  } else {
    const q = args.positionals[0];
    if (q === undefined || args.positionals.length > 1 || !knownForm(q)) {
      // explain.ts (and the DHCP core it imports) loads only for this usage message: the daemon explains.
      const { ACCEPTED_FORMS } = await import('../services/ops/explain.js');
      throw new LanhaError('usage', q === undefined || args.positionals.length > 1
        ? `give one thing to explain: ${ACCEPTED_FORMS}`
        : `"${q}" is not something explain knows: give ${ACCEPTED_FORMS}`, ExitCode.usage);
    }
    query.set('q', q);
  }
  const reply = await callDaemon(resolveSocket(v), 'GET', `/v1/explain?${query.toString()}`);
  const body = reply.body as { error?: string; nearest?: string[]; dhcp?: DhcpExplain | null; dns?: DnsExplain[] };
  if (reply.status === 400) throw new LanhaError('usage', body.error ?? 'bad request', ExitCode.usage);
  if (reply.status === 404) {
    if (v['json'] === true) io.out(JSON.stringify(body, null, 2) + '\n');
    throw new LanhaError('not-found', body.error ?? 'not found', ExitCode.failure);
  }
  if (reply.status !== 200) throw new LanhaError('api-error', body.error ?? `HTTP ${reply.status}`);
  if (v['json'] === true) {
    io.out(JSON.stringify(body, null, 2) + '\n');
    return ExitCode.ok;
  }
  if (body.dhcp) printDhcp(body.dhcp, io);
  for (const d of body.dns ?? []) printDns(d, io);
  return ExitCode.ok;
}

/** A MAC, an IPv4 address or a DNS name (not all digits and dots): what explain takes. */
function knownForm(q: string): boolean {
  return parseMac(q) !== null || parseIpv4(q) !== null || (isHostname(q) && !/^[\d.]+$/.test(q));
}

function printFindings(findings: readonly Finding[], io: CliIo): void {
  if (findings.length === 0) { io.out('ok: no findings\n'); return; }
  for (const f of findings) io.out(`${f.severity.toUpperCase().padEnd(7)} ${f.id}: ${f.evidence} -> ${f.fix}\n`);
}

export async function doctorRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"`, ExitCode.usage);
  let findings: Finding[];
  let measured: { walFsyncP99Ms: Record<string, number | null> } | undefined;
  if (args.values['offline'] === true) {
    const file = configFile(args.values);
    const { configFindings } = await import('../services/ops/doctor.js');
    findings = configFindings(await loadValidConfig(file));
  } else {
    const reply = await callDaemon(resolveSocket(args.values), 'GET', '/v1/doctor');
    if (reply.status !== 200) throw new LanhaError('api-error', (reply.body as { error?: string } | null)?.error ?? `HTTP ${reply.status}`);
    ({ findings, measured } = reply.body as { findings: Finding[]; measured?: typeof measured });
  }
  if (args.values['json'] === true) io.out(JSON.stringify(measured === undefined ? { findings } : { findings, measured }, null, 2) + '\n');
  else {
    printFindings(findings, io);
    const wal = Object.entries(measured?.walFsyncP99Ms ?? {});
    if (wal.length > 0) io.out(`measured: WAL fsync p99 ${wal.map(([m, ms]) => `${m} ${ms === null ? '?' : `${ms} ms`}`).join(', ')}\n`);
  }
  return findings.some((f) => f.severity === 'error') ? ExitCode.failure : ExitCode.ok;
}
