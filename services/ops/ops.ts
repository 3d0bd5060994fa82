import { statfsSync } from 'node:fs';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import type { LanhaConfig } from '../../config/index.js';
import type { ApiResponse, ApiRoutes, ControlServer } from '../../lib/control-server.js';
import type { StateLog, StateLogStatus } from '../../cluster/state-log.js';
import type { NodeDetail, NodeRow } from '../../cluster/nodes-view.js';
import type { RunningService } from '../contract.js';
import type { LeaseRow } from '../dhcp/leases-api.js';
import type { SubnetUsage } from '../dhcp/pool-usage.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import { configPoolUsage, doctorFindings, doctorMeasured, type DoctorInput, type Finding, type RecordRow } from './doctor.js';
import { OpsHttpServer, type HttpReply, type PageHandler } from './http-server.js';
import type { LanhaMetrics } from './metrics.js';
import { errorPage, readLeaseQuery, renderDns, renderHome, renderLeases, renderNode, renderNodes, renderNtp, type DnsRecordRow, type HomeData, type MemberCard, type NtpPageData } from './pages.js';
import { renderExplain } from './explain-page.js';
import { explain, simulate, type ExplainInput, type ExplainResult } from './explain.js';
import { STYLE_CSS } from './style.js';
import { protocolGaps, type OpsTracker } from './tracker.js';
import type { LocalReport, MemberRow, MemberStatusSource } from '../../cluster/member-status.js';
import type { AckAuditSummary } from '../../cluster/ack-audit.js';

// Operator surfaces inside the daemon: the control routes they add (doctor, events, pools), and the
// read-only HTTP listener whose pages are rendered from the same GET routes `lanctl` reads.

export interface OpsContext {
  config: LanhaConfig;
  state: StateLog;
  control: ControlServer;
  services: () => readonly RunningService[];
  clock: Clock;
  log: Logger;
  version: string;
  configHash: string;
  tracker: OpsTracker;
  metrics: LanhaMetrics | null;
  /** What the other members last reported about themselves. */
  members: MemberStatusSource;
  localReport: () => LocalReport;
}

function serviceStatus(o: OpsContext, name: string): Record<string, unknown> | undefined {
  return o.services().find((s) => s.name === name)?.status() as Record<string, unknown> | undefined;
}

export function pools(o: OpsContext): SubnetUsage[] {
  return configPoolUsage(o.config, o.state.fsm.leases(), o.clock.wallMs());
}

function doctorInput(o: OpsContext): DoctorInput {
  let disk: { freeBytes: number; totalBytes: number; dir: string } | undefined;
  try {
    const s = statfsSync(o.config.node.stateDir);
    disk = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize, dir: o.config.node.stateDir };
  } catch { /* no statfs: no disk finding */ }
  return {
    config: o.config,
    cluster: o.state.status(),
    vip: serviceStatus(o, 'vip'),
    ntp: serviceStatus(o, 'ntp'),
    dns: serviceStatus(o, 'dns'),
    tftp: serviceStatus(o, 'tftp'),
    dhcp: serviceStatus(o, 'dhcp'),
    pools: pools(o),
    leases: [...o.state.fsm.leases()],
    records: dnsRecords(o) ?? undefined,
    disk,
    local: o.localReport(),
    members: o.members.members(),
    nowMs: o.clock.wallMs(),
  };
}

export function findings(o: OpsContext): Finding[] {
  return doctorFindings(doctorInput(o));
}

function explainInput(o: OpsContext): ExplainInput {
  const fsm = o.state.fsm;
  return {
    config: o.config,
    // With the inventory: its nodes are reservations and known clients (clients: known), as in the server.
    leases: { lease: (ip) => fsm.lease(ip), leaseByMac: (m) => fsm.leaseByMac(m), leaseByClientId: (c) => fsm.leaseByClientId(c), all: () => fsm.leases(), inventory: fsm.inventory },
    bootEvents: (mac) => fsm.bootEvents(mac),
    records: dnsRecords(o),
    nowMs: o.clock.wallMs(),
  };
}

function dnsRecords(o: OpsContext): RecordRow[] | null {
  const dns = o.services().find((s) => s.name === 'dns') as (RunningService & { zones?: { list(): RecordRow[] } }) | undefined;
  return dns?.zones?.list() ?? null;
}

function explainRoute(o: OpsContext, query: URLSearchParams): ApiResponse {
  const input = explainInput(o);
  let result: ExplainResult;
  if (query.get('simulate') !== null) {
    const arch = query.get('arch');
    if (arch !== null && !/^\d{1,5}$/.test(arch)) return { status: 400, body: { error: `--arch ${arch} is not an option 93 number (0 x86 BIOS, 7 x64 UEFI, 11 arm64 UEFI, ...)` } };
    result = simulate(input, {
      mac: query.get('mac') ?? '', arch: arch === null ? undefined : Number(arch), vendorClass: query.get('vendorClass') ?? undefined,
      userClass: query.get('userClass') ?? undefined, clientId: query.get('clientId') ?? undefined, hostname: query.get('hostname') ?? undefined,
    });
  } else {
    result = explain(input, query.get('q') ?? '');
  }
  if (!result.ok) return { status: result.status, body: { error: result.error, ...(result.nearest ? { nearest: result.nearest } : {}) } };
  const { ok: _ok, ...rest } = result;
  return { status: 200, body: rest };
}

/** GET /v1/doctor, /v1/events, /v1/pools, /v1/explain. */
export function opsRoutes(o: OpsContext): ApiRoutes {
  return {
    'GET /v1/explain': ({ query }) => explainRoute(o, query),
    'GET /v1/doctor': () => {
      const input = doctorInput(o);
      return { status: 200, body: { findings: doctorFindings(input), measured: doctorMeasured(input) } };
    },
    'GET /v1/events': () => ({ status: 200, body: { events: o.tracker.events, lastFailover: o.tracker.lastFailover, lastTakeover: o.tracker.lastTakeover, gaps: protocolGaps(o.tracker.lastFailover, o.tracker.lastTakeover, o.tracker.probed), probed: o.tracker.probed, probing: o.tracker.probing, leaderChanges: o.tracker.leaderChanges } }),
    'GET /v1/pools': () => ({ status: 200, body: { subnets: pools(o) } }),
  };
}

const htmlReply = (body: string, status = 200): HttpReply => ({ status, contentType: 'text/html; charset=utf-8', body });

async function body<T>(o: OpsContext, path: string, query?: Record<string, string>): Promise<T | null> {
  const reply: ApiResponse = await o.control.read(path, new URLSearchParams(query));
  return reply.status === 200 ? reply.body as T : null;
}

interface StatusBody {
  node: string; version: string; uptimeSeconds: number; configHash: string; warnings: string[]; members: MemberRow[]; ackAudit?: AckAuditSummary;
  cluster: StateLogStatus & { lastIndex?: number; progress?: Record<string, { match: number; active: boolean }>; members?: { voters: string[]; learners: string[]; witnesses: string[] }; transport?: { peers?: Record<string, { connected?: boolean }> }; leaseValid?: boolean };
  services: Record<string, { listening: string[] } & Record<string, unknown>>;
}

function memberCards(o: OpsContext, s: StatusBody): MemberCard[] {
  const c = s.cluster;
  const configured = o.config.cluster?.members ?? [{ name: o.config.node.name, address: o.config.node.address === undefined ? '' : formatIpv4(o.config.node.address), port: 0, role: o.config.node.role }];
  return configured.map((m): MemberCard => {
    const kind = c.members?.witnesses.includes(m.name) || m.role === 'witness' ? 'witness' : c.members?.learners.includes(m.name) ? 'learner' : 'voter';
    const r = s.members.find((x) => x.name === m.name);
    if (r === undefined || !r.reported) {
      // Never heard from: down, unreachable, or a version that does not report; say what is known.
      const p = c.progress?.[m.name];
      const peer = c.transport?.peers?.[m.name];
      return {
        name: m.name, kind, local: false, address: m.address || null, role: c.leader === m.name ? 'leader' : null, term: null, commitIndex: p?.match ?? null, appliedIndex: null,
        lagEntries: p !== undefined && typeof c.lastIndex === 'number' ? Math.max(0, c.lastIndex - p.match) : null,
        lastContact: peer === undefined ? null : peer.connected ? 'connected, no report (an older version?)' : 'not connected',
        clockOffsetMs: null, version: null, configHash: null,
        missing: ['no report from this member (down, unreachable, or a version without member reports)'],
      };
    }
    return {
      name: m.name, kind, local: r.local, address: m.address || null, role: r.role, term: r.term, commitIndex: r.commitIndex, appliedIndex: r.appliedIndex, lagEntries: r.lagEntries,
      lastContact: r.local ? 'this node' : `${((r.lastContactMs ?? 0) / 1000).toFixed(1)} s ago`,
      clockOffsetMs: r.clockOffsetMs, version: r.version, configHash: r.configHash, sameState: r.sameState, ackAudit: r.ackAudit, missing: [],
    };
  });
}

function serviceSummary(name: string, s: Record<string, unknown>): string {
  switch (name) {
    case 'dhcp': return `server id ${String(s['serverId'])}, ${String(s['offers'])} offers pending`;
    case 'dns': return `serial ${String(s['serial'])}, zones ${(s['zones'] as string[] | undefined)?.join(', ') ?? '-'}`;
    case 'ntp': return s['synchronised'] === true ? `synchronised, stratum ${String(s['stratum'])}` : `NOT synchronised (${String(s['reason'])})`;
    case 'vip': return s['held'] === true ? `holding ${String(s['address'])}` : `${String(s['address'])} held by ${String(s['holder'] ?? 'nobody known')}`;
    case 'tftp': return 'read-only file service';
    default: return '';
  }
}

async function homeData(o: OpsContext): Promise<HomeData> {
  const s = (await body<StatusBody>(o, '/v1/status'))!;
  const c = s.cluster;
  const vip = s.services['vip'];
  const doctor = await body<{ findings: Finding[] }>(o, '/v1/doctor');
  const events = await body<{ events: HomeData['events']; lastFailover: HomeData['lastFailover']; gaps: HomeData['gaps'] }>(o, '/v1/events');
  const quorum = c.role === 'leader' ? c.leaseValid !== false : c.leader !== null;
  return {
    node: s.node, version: s.version, uptimeSeconds: s.uptimeSeconds, mode: c.mode, role: c.role, leader: c.leader, term: c.term, quorum,
    witness: o.config.cluster?.members.find((m) => m.role === 'witness')?.name ?? null,
    members: memberCards(o, s),
    vip: vip === undefined ? null : { address: String(vip['address']), held: vip['held'] === true, holder: (vip['holder'] as string | null) ?? null, since: (vip['since'] as string | null) ?? null },
    lastFailover: events?.lastFailover ?? null,
    gaps: events?.gaps ?? [],
    ackAudit: s.services['dhcp'] === undefined ? null : s.ackAudit ?? null,
    services: Object.entries(s.services).map(([name, st]) => ({ name, listening: st.listening, summary: serviceSummary(name, st) })),
    findings: doctor?.findings ?? [],
    events: events?.events ?? [],
    warnings: s.warnings,
  };
}

/** The listener's pages: each reads the GET routes and renders. */
export function opsPages(o: OpsContext): Map<string, PageHandler> {
  const node = o.config.node.name;
  const pages = new Map<string, PageHandler>();
  pages.set('/', async () => htmlReply(renderHome(await homeData(o), o.clock.wallMs())));
  pages.set('/style.css', () => ({ status: 200, contentType: 'text/css; charset=utf-8', body: STYLE_CSS }));
  pages.set('/leases', async (query) => {
    const leases = await body<{ leases: LeaseRow[] }>(o, '/v1/leases', { all: '1' });
    const usage = await body<{ subnets: SubnetUsage[] }>(o, '/v1/pools');
    return htmlReply(renderLeases(leases?.leases ?? [], usage?.subnets ?? [], readLeaseQuery(query), node));
  });
  pages.set('/nodes', async () => htmlReply(renderNodes((await body<{ nodes: NodeRow[] }>(o, '/v1/nodes'))?.nodes ?? [], node)));
  pages.set('/nodes/', async (_query, rest) => {
    let mac: string;
    try { mac = decodeURIComponent(rest); } catch { return htmlReply(errorPage(400, 'the node in the path is not a MAC address like 52:54:00:aa:bb:cc'), 400); }
    const reply = await o.control.read('/v1/nodes', new URLSearchParams({ mac }));
    if (reply.status !== 200) return htmlReply(errorPage(reply.status === 400 ? 400 : 404, (reply.body as { error?: string }).error ?? 'no such node'), reply.status === 400 ? 400 : 404);
    return htmlReply(renderNode((reply.body as { node: NodeDetail }).node, node));
  });
  pages.set('/dns', async () => {
    const records = await body<{ serial: number; records: DnsRecordRow[] }>(o, '/v1/dns/records');
    const st = serviceStatus(o, 'dns');
    const members = (await body<{ members?: MemberRow[] }>(o, '/v1/status'))?.members ?? [];
    return htmlReply(renderDns(records === null || st === undefined ? null : { serial: records.serial, records: records.records, zones: (st['zones'] as string[]) ?? [], listening: (st['listening'] as string[]) ?? [], members }, node));
  });
  pages.set('/ntp', async () => htmlReply(renderNtp(await body<NtpPageData>(o, '/v1/ntp'), node)));
  pages.set('/explain', async (query) => {
    const q = query.get('q') ?? '';
    const reply = q.trim() === '' ? null : await o.control.read('/v1/explain', new URLSearchParams({ q }));
    return htmlReply(renderExplain(q, reply, node));
  });
  if (o.metrics !== null) {
    const metrics = o.metrics;
    pages.set('/metrics', async () => ({ status: 200, contentType: metrics.contentType, body: await metrics.text() }));
  }
  return pages;
}

export async function startOpsHttp(o: OpsContext): Promise<OpsHttpServer | null> {
  const http = o.config.http;
  if (http === undefined) return null;
  const server = new OpsHttpServer({
    listen: http.listen,
    maxConnections: http.maxConnections,
    maxConnectionsPerSource: http.maxConnectionsPerSource,
    log: o.log,
    pages: opsPages(o),
    readApi: (path, query) => o.control.read(path, query),
    errorPage,
  });
  await server.listen();
  o.log.info({ event: 'http.listening', address: server.address }, `status pages on http://${server.address}/`);
  return server;
}
