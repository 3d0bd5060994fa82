import { html, raw, type Html } from './html.js';
import { usageLevel, type SubnetUsage } from '../dhcp/pool-usage.js';
import { expiresInText, type LeaseRow } from '../dhcp/leases-api.js';
import type { NodeDetail, NodeRow } from '../../cluster/nodes-view.js';
import type { Finding } from './doctor.js';
import type { OpsEvent, FailoverRecord, ProtocolGap } from './tracker.js';
import { formatDuration } from '../../lib/table.js';
import { describeAckAudit, type AckAuditSummary } from '../../cluster/ack-audit.js';
import type { MemberAckAudit } from '../../cluster/member-status.js';

// Server-rendered pages: pure functions from the control API's JSON (what `lanctl ... --json`
// prints) to HTML strings. No JavaScript; every value goes through `html` (escaped); values a test
// reads carry data-testid.

export interface MemberCard {
  name: string;
  kind: string;
  local: boolean;
  address: string | null;
  role: string | null;
  term: number | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  lagEntries: number | null;
  lastContact: string | null;
  clockOffsetMs: number | null;
  version: string | null;
  configHash: string | null;
  /** Its replicated state against this node's at one applied index (null: not comparable now). */
  sameState?: boolean | null;
  /** Its ACK audit as it reports it (absent or null: no DHCP there, or not reported). */
  ackAudit?: MemberAckAudit | null;
  /** What this node cannot say about the member, in words. */
  missing: string[];
}

export interface HomeData {
  node: string;
  version: string;
  uptimeSeconds: number;
  mode: string;
  role: string;
  leader: string | null;
  term: number;
  quorum: boolean;
  witness: string | null;
  members: MemberCard[];
  vip: { address: string; held: boolean; holder: string | null; since: string | null } | null;
  lastFailover: FailoverRecord | null;
  /** The last failovers' gap per protocol (planned here, and the last election takeover). */
  gaps?: ProtocolGap[];
  /** The audit of the ACKs this node sent (absent without DHCP). */
  ackAudit?: AckAuditSummary | null;
  services: Array<{ name: string; listening: string[]; summary: string }>;
  findings: Finding[];
  events: readonly OpsEvent[];
  warnings: string[];
}

const NAV: ReadonlyArray<readonly [string, string]> = [['/', 'Status'], ['/leases', 'Leases'], ['/nodes', 'Nodes'], ['/dns', 'DNS'], ['/ntp', 'NTP'], ['/explain', 'Explain'], ['/metrics', 'Metrics']];

/** The page frame: header with navigation, main, footer. `current` marks the nav entry. */
export function layout(title: string, current: string, node: string, body: Html): string {
  const nav = NAV.map(([href, label]) => html`<a href="${href}"${href === current ? raw(' aria-current="page"') : ''}>${label}</a>`);
  return '<!doctype html>\n' + html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ${node} · lanha</title><link rel="stylesheet" href="/style.css"><link rel="icon" href="data:,"></head>
<body><header><span class="brand">lanha</span><span class="muted" data-testid="node-name">${node}</span><nav>${nav}</nav></header>
<main><h1>${title}</h1>${body}</main><footer>read-only page · changes go through <code>lanctl</code> on the node</footer></body></html>`.text;
}

export function errorPage(status: number, message: string): string {
  return layout(status === 404 ? 'Not found' : `Error ${status}`, '', 'lanha', html`<p class="message error" data-testid="error">${message}</p><p><a href="/">Back to the status page</a></p>`);
}

const dash = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v));

function badge(text: string, level: string, testid?: string): Html {
  return testid === undefined ? html`<span class="badge ${level}">${text}</span>` : html`<span class="badge ${level}" data-testid="${testid}">${text}</span>`;
}

function ago(iso: string | null, nowMs: number): string {
  if (iso === null) return '-';
  const t = Date.parse(iso);
  return Number.isFinite(t) ? `${formatDuration(Math.max(0, nowMs - t))} ago` : '-';
}

function memberCard(m: MemberCard): Html {
  const id = `member-${m.name}`;
  const row = (label: string, key: string, value: unknown): Html => html`<dt>${label}</dt><dd data-testid="${id}-${key}">${dash(value)}</dd>`;
  return html`<section class="card" data-testid="${id}"><h3>${m.name} ${m.local ? badge('this node', 'ok') : ''} <span class="muted">${m.kind}</span></h3><dl>
${row('role', 'role', m.role)}${row('address', 'address', m.address)}${row('term', 'term', m.term)}${row('commit index', 'commit', m.commitIndex)}
${row('applied index', 'applied', m.appliedIndex)}${row('lag (entries)', 'lag', m.lagEntries)}${row('last contact', 'contact', m.lastContact)}
${row('clock offset', 'offset', m.clockOffsetMs === null ? null : `${m.clockOffsetMs >= 0 ? '+' : ''}${m.clockOffsetMs.toFixed(3)} ms`)}
${row('version', 'version', m.version)}${row('config hash', 'config', m.configHash === null ? null : m.configHash.slice(0, 12))}
${m.ackAudit == null ? '' : row('ACKed leases lost', 'acked-lost', `${m.ackAudit.lostTotal} (${m.ackAudit.checked === null ? 'no audit yet' : `its last audit checked ${m.ackAudit.checked} ACK${m.ackAudit.checked === 1 ? '' : 's'}`})`)}
${m.local ? '' : row('state', 'state', m.sameState === true ? 'same as this node (same applied index, same state hash)' : m.sameState === false ? 'DIFFERS from this node at the same applied index' : 'not compared now (another applied index)')}</dl>
${m.missing.length === 0 ? '' : html`<p class="muted" data-testid="${id}-missing">Not known here: ${m.missing.join(', ')}.</p>`}</section>`;
}

function findingsBlock(findings: readonly Finding[]): Html {
  if (findings.length === 0) return html`<p data-testid="doctor-ok">${badge('ok', 'ok')} no findings</p>`;
  return html`<div class="scroll"><table data-testid="doctor"><thead><tr><th>severity</th><th>check</th><th>evidence</th><th>to fix</th></tr></thead><tbody>
${findings.map((f) => html`<tr data-testid="finding"><td>${badge(f.severity, f.severity === 'error' ? 'error' : f.severity === 'warning' ? 'warn' : '')}</td><td class="mono" data-testid="finding-id">${f.id}</td><td class="wrap">${f.evidence}</td><td class="wrap"><code>${f.fix}</code></td></tr>`)}
</tbody></table></div>`;
}

/** ACKed leases lost: the count the audit found, and what it rests on. */
function ackAuditBlock(a: AckAuditSummary | null): Html {
  if (a === null) return html``;
  return html`<dl><dt>ACKed leases lost</dt><dd data-testid="acked-lost">${a.lostTotal === 0 ? badge('0', 'ok') : badge(String(a.lostTotal), 'full')}</dd></dl><p class="muted" data-testid="acked-audit">${describeAckAudit(a)}</p>`;
}

export function renderHome(d: HomeData, nowMs: number): string {
  const vip = d.vip === null
    ? html`<p class="muted">no VIP configured on this node</p>`
    : html`<dl><dt>address</dt><dd data-testid="vip-address">${d.vip.address}</dd><dt>holder</dt><dd data-testid="vip-holder">${d.vip.held ? d.node : dash(d.vip.holder)}</dd>
<dt>held here</dt><dd data-testid="vip-held">${d.vip.held ? 'yes' : 'no'}</dd><dt>since</dt><dd data-testid="vip-since">${d.vip.since === null ? '-' : html`${d.vip.since} (${ago(d.vip.since, nowMs)})`}</dd></dl>`;
  const gaps = d.gaps ?? [];
  const gapTable = gaps.length === 0 ? html`` : html`<table data-testid="failover-gaps"><thead><tr><th>protocol</th><th>after</th><th>gap</th><th>how</th></tr></thead><tbody>
${gaps.map((g) => html`<tr title="${g.measures}"><td>${g.protocol}</td><td>${g.trigger === 'transfer' ? 'lanctl failover' : 'election'}</td><td data-testid="failover-gap-${g.protocol}-${g.trigger}">${Math.round(g.seconds * 1000)} ms</td><td data-testid="failover-gap-${g.protocol}-${g.trigger}-method">${g.method === 'probe' ? 'probed' : 'derived'}</td></tr>`)}
</tbody></table><p class="muted">Probed: the first answer to this node's probes of the VIP (DNS, NTP, TFTP) sent while the failover ran. Derived: from the parts the daemons timed (DNS, NTP and TFTP answer on the VIP from the new holder's first GARP, DHCP once its leader lease is valid; DHCP is never probed).</p>`;
  const failover = d.lastFailover === null
    ? html`<p class="muted" data-testid="failover-none">no failover run on this node since it started</p>${gapTable}`
    : html`<dl><dt>when</dt><dd>${d.lastFailover.at}</dd><dt>from → to</dt><dd>${d.lastFailover.from} → ${d.lastFailover.leader}</dd><dt>gap</dt><dd data-testid="failover-gap">${d.lastFailover.gapMs} ms</dd></dl>${gapTable}`;
  const body = html`
${d.warnings.map((w) => html`<p class="message" data-testid="warning">${w}</p>`)}
<div class="grid">
<section class="card"><h3>Cluster</h3><dl><dt>mode</dt><dd data-testid="cluster-mode">${d.mode}</dd><dt>quorum</dt><dd data-testid="quorum">${d.quorum ? badge('yes', 'ok') : badge('NO', 'full')}</dd>
<dt>leader</dt><dd data-testid="leader">${dash(d.leader)}</dd><dt>term</dt><dd data-testid="term">${d.term}</dd><dt>witness</dt><dd data-testid="witness">${d.witness ?? 'none configured'}</dd>
<dt>uptime</dt><dd>${formatDuration(d.uptimeSeconds * 1000)}</dd><dt>version</dt><dd data-testid="version">${d.version}</dd></dl></section>
<section class="card"><h3>VIP</h3>${vip}</section>
<section class="card"><h3>Last failover</h3>${failover}${ackAuditBlock(d.ackAudit ?? null)}<p class="muted">Planned failover: <code>lanctl failover</code> on the leader.</p></section>
</div>
<h2>Members</h2><div class="grid">${d.members.map(memberCard)}</div>
<h2>Services</h2><div class="grid">${d.services.length === 0 ? html`<p class="muted">no services enabled</p>` : d.services.map((s) => html`<section class="card" data-testid="service-${s.name}"><h3>${s.name}</h3><p>${s.summary}</p><p class="muted mono">${s.listening.join(', ') || 'not listening'}</p></section>`)}</div>
<h2>Doctor</h2>${findingsBlock(d.findings)}<p class="muted">Same checks: <code>lanctl doctor</code>.</p>
<h2>Last events</h2>${d.events.length === 0 ? html`<p class="muted" data-testid="events-none">no events since the daemon started</p>` : html`<div class="scroll"><table data-testid="events"><thead><tr><th>when</th><th>kind</th><th>event</th><th>log index</th></tr></thead><tbody>
${[...d.events].reverse().map((e) => html`<tr><td class="mono">${e.at}</td><td>${e.kind}</td><td class="wrap">${e.text}</td><td>${dash(e.index)}</td></tr>`)}</tbody></table></div>`}`;
  return layout(`${d.node}: ${d.role}${d.leader === null || d.leader === d.node ? '' : ` (leader: ${d.leader})`}`, '/', d.node, body);
}

// ---- leases ----

export const LEASE_STATES = ['active', 'bound', 'declined', 'released', 'expired', 'all'] as const;
export const PAGE_SIZE = 50;
const SEARCH = /^[0-9a-zA-Z.:_ -]{0,64}$/;

export interface LeaseQuery {
  q: string;
  state: (typeof LEASE_STATES)[number];
  subnet: string;
  page: number;
  problems: string[];
}

/** Reads the /leases query; anything it cannot use becomes a message and the default. */
export function readLeaseQuery(query: URLSearchParams): LeaseQuery {
  const problems: string[] = [];
  let q = (query.get('q') ?? '').trim();
  if (!SEARCH.test(q)) { problems.push(`search "${q}" can't be used: search by part of an IP, MAC, host name or client-id (letters, digits, ".", ":" and "-")`); q = ''; }
  const stateText = query.get('state') ?? 'active';
  const state = (LEASE_STATES as readonly string[]).includes(stateText) ? stateText as LeaseQuery['state'] : 'active';
  if (state !== stateText) problems.push(`state "${stateText}" is not one of ${LEASE_STATES.join(', ')}`);
  const pageText = query.get('page') ?? '1';
  const page = /^\d{1,6}$/.test(pageText) && Number(pageText) >= 1 ? Number(pageText) : 1;
  if (String(page) !== pageText && query.get('page') !== null) problems.push(`page "${pageText}" is not a page number`);
  return { q, state, subnet: query.get('subnet') ?? '', page, problems };
}

/** The rows the query selects: substring search over ip, mac, hostname and client-id. */
export function filterLeases(rows: readonly LeaseRow[], query: LeaseQuery): LeaseRow[] {
  const needle = query.q.toLowerCase();
  const macNeedle = needle.replace(/[-.]/g, ':');
  return rows.filter((r) => {
    if (query.state === 'active' && r.state !== 'bound' && r.state !== 'declined') return false;
    if (query.state !== 'active' && query.state !== 'all' && r.state !== query.state) return false;
    if (query.subnet !== '' && r.subnet !== query.subnet) return false;
    if (needle === '') return true;
    return r.ip.includes(needle) || r.mac.includes(macNeedle) || (r.hostname ?? '').toLowerCase().includes(needle) || (r.clientId ?? '').includes(needle.replace(/[:.-]/g, ''));
  });
}

export function poolBar(ratio: number): Html {
  const pct = Math.round(Math.min(1, Math.max(0, ratio)) * 1000) / 10;
  return html`<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="${pct} % used"><rect class="track" width="100" height="8"/><rect class="${usageLevel(ratio)}" width="${pct}" height="8"/></svg>`;
}

function poolCards(usage: readonly SubnetUsage[]): Html {
  if (usage.length === 0) return html`<p class="muted">DHCP is not enabled on this node.</p>`;
  return html`<div class="grid">${usage.map((s) => html`<section class="card" data-testid="subnet-${s.subnet}"><h3>${s.subnet}</h3>
${s.pools.map((p) => html`<div data-testid="pool" data-level="${usageLevel(p.ratio)}"><span class="mono">${p.pool}</span>${p.unknownPool === true ? ' (unknown clients)' : ''}: <span data-testid="pool-assigned">${p.assigned}</span> of <span data-testid="pool-size">${p.size}</span> (<span data-testid="pool-percent">${Math.round(p.ratio * 100)}</span> %)${p.declined > 0 ? html`, ${p.declined} declined` : ''}${poolBar(p.ratio)}</div>`)}
<p class="muted">reservations: <span data-testid="reserved-outside">${s.reservedOutside}</span> outside the pools, ${s.reservations - s.reservedOutside} inside</p></section>`)}</div>`;
}

export function renderLeases(rows: readonly LeaseRow[], usage: readonly SubnetUsage[], query: LeaseQuery, node: string): string {
  const matched = filterLeases(rows, query);
  const pages = Math.max(1, Math.ceil(matched.length / PAGE_SIZE));
  const page = Math.min(query.page, pages);
  const shown = matched.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const link = (p: number): string => {
    const params = new URLSearchParams();
    if (query.q !== '') params.set('q', query.q);
    if (query.state !== 'active') params.set('state', query.state);
    if (query.subnet !== '') params.set('subnet', query.subnet);
    if (p > 1) params.set('page', String(p));
    const text = params.toString();
    return `/leases${text === '' ? '' : `?${text}`}`;
  };
  const subnets = [...new Set([...usage.map((s) => s.subnet), ...rows.map((r) => r.subnet)])].filter((s) => s !== '');
  const body = html`<h2>Pools</h2>${poolCards(usage)}
<h2>Leases</h2>
${query.problems.map((p) => html`<p class="message" data-testid="query-problem">${p}</p>`)}
<form class="filters" method="get" action="/leases"><label>search<input name="q" value="${query.q}" maxlength="64" placeholder="IP, MAC, host name, client-id" data-testid="search"></label>
<label>state<select name="state">${LEASE_STATES.map((s) => html`<option${s === query.state ? raw(' selected') : ''}>${s}</option>`)}</select></label>
<label>subnet<select name="subnet"><option value="">all</option>${subnets.map((s) => html`<option${s === query.subnet ? raw(' selected') : ''}>${s}</option>`)}</select></label>
<button type="submit">Show</button></form>
<p><span data-testid="lease-count">${matched.length}</span> of ${rows.length} leases${matched.length > PAGE_SIZE ? html`, page ${page} of ${pages}` : ''}. Release one: <code>lanctl leases release IP</code>.</p>
${shown.length === 0 ? html`<p class="muted" data-testid="leases-none">no leases match</p>` : html`<div class="scroll"><table data-testid="leases"><thead><tr><th>ip</th><th>mac</th><th>host name</th><th>client-id</th><th>state</th><th>expires in</th><th>subnet</th><th>log index</th><th>ACKed by</th></tr></thead><tbody>
${shown.map((l) => html`<tr data-testid="lease-row"><td class="mono" data-testid="lease-ip"><a href="/explain?q=${l.ip}">${l.ip}</a></td><td class="mono" data-testid="lease-mac"><a href="/nodes/${l.mac}">${l.mac}</a></td><td class="wrap" data-testid="lease-hostname">${dash(l.hostname)}</td><td class="mono wrap">${dash(l.clientId)}</td><td data-testid="lease-state">${l.state}</td><td>${expiresInText(l)}</td><td class="mono">${l.subnet}</td><td data-testid="lease-index">${dash(l.index)}</td><td data-testid="lease-acked-by">${l.ackedBy ?? 'unknown'}</td></tr>`)}
</tbody></table></div>`}
${pages > 1 ? html`<p class="pager">${page > 1 ? html`<a href="${link(page - 1)}" rel="prev">← previous</a>` : ''}${page < pages ? html`<a href="${link(page + 1)}" rel="next">next →</a>` : ''}</p>` : ''}`;
  return layout('Leases', '/leases', node, body);
}

// ---- nodes ----

const STRING_KEYS_SHOWN = new Set(['mac', 'ip', 'hostname', 'reserved', 'lease', 'leaseExpiresInS', 'last', 'lastAgoS', 'bootEvents', 'events']);

/** Fields the node view returns beyond the ones this page knows, shown as they are. */
function extraFields(n: object): Html {
  const extra = Object.entries(n).filter(([k, v]) => !STRING_KEYS_SHOWN.has(k) && (typeof v !== 'object' || v === null));
  return extra.length === 0 ? html`` : html`<dl>${extra.map(([k, v]) => html`<dt>${k}</dt><dd data-testid="node-${k}">${dash(v)}</dd>`)}</dl>`;
}

function isStuck(n: object): boolean {
  const r = n as Record<string, unknown>;
  return r['stuck'] === true || (typeof r['stuck'] === 'string' && r['stuck'] !== '');
}

export function renderNodes(nodes: readonly NodeRow[], node: string): string {
  const body = nodes.length === 0
    ? html`<p class="muted" data-testid="nodes-none">no compute nodes yet: no reservations, leases or boot events</p>`
    : html`<div class="scroll"><table data-testid="nodes"><thead><tr><th>mac</th><th>name</th><th>profile</th><th>ip</th><th>host name</th><th>lease</th><th>last event</th><th>when</th><th>boot events</th></tr></thead><tbody>
${nodes.map((n) => html`<tr data-testid="node-row"${isStuck(n) ? raw(' class="stuck"') : ''}><td class="mono"><a href="/nodes/${n.mac}" data-testid="node-mac">${n.mac}</a></td><td data-testid="node-name">${dash(n.name)}</td><td>${dash(n.profile)}${n.profileUnknown ? ' (unknown profile)' : ''}</td><td class="mono" data-testid="node-ip">${dash(n.ip)}</td><td class="wrap" data-testid="node-hostname">${dash(n.hostname)}${n.reserved ? ' (reserved)' : ''}</td><td>${n.lease}</td><td class="wrap">${n.last === null ? 'never seen' : `${n.last.event}${n.last.detail === null ? '' : ` ${n.last.detail}`}`}</td><td>${n.lastAgoS === null ? '-' : `${formatDuration(n.lastAgoS * 1000)} ago`}</td><td>${n.bootEvents}</td></tr>`)}
</tbody></table></div>`;
  return layout('Compute nodes', '/nodes', node, html`${body}<p class="muted">Same list: <code>lanctl nodes</code>.</p>`);
}

export function renderNode(n: NodeDetail, node: string): string {
  const body = html`<div class="card"><dl><dt>mac</dt><dd class="mono" data-testid="node-mac">${n.mac}</dd><dt>ip</dt><dd class="mono" data-testid="node-ip">${dash(n.ip)}</dd>
<dt>host name</dt><dd data-testid="node-hostname">${dash(n.hostname)}</dd><dt>reserved</dt><dd>${n.reserved ? 'yes' : 'no'}</dd><dt>lease</dt><dd data-testid="node-lease">${n.lease}${n.leaseExpiresInS === null ? '' : `, ends in ${formatDuration(n.leaseExpiresInS * 1000)}`}</dd></dl>
${extraFields(n)}${isStuck(n) ? html`<p class="stuck" data-testid="node-stuck">stuck: ${String((n as unknown as Record<string, unknown>)['stuck'])}</p>` : ''}</div>
<h2>Boot timeline</h2>${n.events.length === 0 ? html`<p class="muted">no events</p>` : html`<div class="scroll"><table data-testid="timeline"><thead><tr><th>when</th><th>event</th><th>detail</th></tr></thead><tbody>
${n.events.map((e) => html`<tr data-testid="timeline-row"><td class="mono">${e.at}</td><td>${e.event}</td><td class="wrap">${dash(e.detail)}</td></tr>`)}</tbody></table></div>`}
<p class="muted">Why this node got its answers: <a href="/explain?q=${n.mac}">explain ${n.mac}</a> · <code>lanctl nodes --mac ${n.mac}</code></p>`;
  return layout(`Node ${n.hostname ?? n.mac}`, '/nodes', node, body);
}

// ---- dns ----

export interface DnsRecordRow { zone: string; name: string; type: string; ttl: number; data: string; source: string }

export function renderDns(data: { serial: number; records: readonly DnsRecordRow[]; zones: readonly string[]; listening: readonly string[]; members?: ReadonlyArray<{ name: string; dnsSerial: number | null; appliedIndex: number | null; local: boolean }> } | null, node: string): string {
  if (data === null) return layout('DNS', '/dns', node, html`<p class="muted">DNS is not enabled on this node.</p>`);
  const counts = new Map<string, number>();
  for (const r of data.records) counts.set(r.source, (counts.get(r.source) ?? 0) + 1);
  const body = html`<div class="grid"><section class="card"><h3>Zones</h3><dl><dt>serial (this node)</dt><dd data-testid="dns-serial">${data.serial}</dd>
<dt>zones</dt><dd data-testid="dns-zones">${data.zones.join(', ')}</dd><dt>listening</dt><dd class="mono">${data.listening.join(', ')}</dd></dl>
${(data.members ?? []).filter((m) => !m.local).map((m) => html`<dl><dt>serial (${m.name})</dt><dd data-testid="dns-serial-${m.name}">${m.dnsSerial === null ? 'not reported (no DNS there, or no report)' : `${m.dnsSerial} at applied index ${m.appliedIndex ?? '?'}`}</dd></dl>`)}
<p class="muted">Each member reports its serial over the cluster; doctor flags serials that differ at the same applied index.</p></section>
<section class="card"><h3>Answer sources</h3><dl>${[...counts].map(([s, n]) => html`<dt>${s}</dt><dd>${n}</dd>`)}</dl><p class="muted">Names outside these zones are forwarded (LAN clients only) and cached.</p></section></div>
<h2>Records</h2><div class="scroll"><table data-testid="records"><thead><tr><th>name</th><th>type</th><th>ttl</th><th>data</th><th>source</th></tr></thead><tbody>
${data.records.map((r) => html`<tr data-testid="record-row"><td class="mono" data-testid="record-name">${r.name}</td><td>${r.type}</td><td>${r.ttl}</td><td class="mono wrap" data-testid="record-data">${r.data}</td><td>${r.source}</td></tr>`)}
</tbody></table></div><p class="muted">Same list: <code>lanctl records</code>; add one: <code>lanctl records set NAME TYPE DATA</code>.</p>`;
  return layout('DNS', '/dns', node, body);
}

// ---- ntp ----

export interface NtpPageData {
  synchronised: boolean; reason: string; stratum: number; referenceId: string; offsetMs: number | null;
  rootDelayMs: number; rootDispersionMs: number; mode: string; listening: string[];
  sources: Array<{ name: string; kind: string; reach: string; offsetMs: number | null; delayMs: number | null; stratum: number | null; problem: string | null }>;
}

const signedMs = (v: number | null): string => (v === null ? '-' : `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`);

export function renderNtp(s: NtpPageData | null, node: string): string {
  if (s === null) return layout('NTP', '/ntp', node, html`<p class="muted">NTP is not enabled on this node.</p>`);
  const body = html`<div class="card"><dl><dt>synchronised</dt><dd data-testid="ntp-synchronised">${s.synchronised ? badge('yes', 'ok') : badge('NO', 'full')}</dd><dt>why</dt><dd>${s.reason}</dd>
<dt>stratum</dt><dd data-testid="ntp-stratum">${s.stratum}</dd><dt>reference id</dt><dd class="mono" data-testid="ntp-refid">${s.referenceId}</dd><dt>offset</dt><dd>${signedMs(s.offsetMs)}</dd>
<dt>root delay</dt><dd>${s.rootDelayMs} ms</dd><dt>root dispersion</dt><dd>${s.rootDispersionMs} ms</dd><dt>listening</dt><dd class="mono">${s.listening.join(', ')}</dd></dl></div>
<h2>Sources</h2>${s.sources.length === 0 ? html`<p class="muted">no upstreams and no peer configured</p>` : html`<div class="scroll"><table data-testid="ntp-sources"><thead><tr><th>source</th><th>kind</th><th>reach</th><th>offset</th><th>delay</th><th>stratum</th><th>state</th></tr></thead><tbody>
${s.sources.map((x) => html`<tr><td class="mono">${x.name}</td><td>${x.kind}</td><td class="mono">${x.reach}</td><td>${signedMs(x.offsetMs)}</td><td>${x.delayMs === null ? '-' : `${x.delayMs.toFixed(3)} ms`}</td><td>${dash(x.stratum)}</td><td>${x.problem ?? 'ok'}</td></tr>`)}</tbody></table></div>`}
<p class="muted">Same view: <code>lanctl ntp status</code>.</p>`;
  return layout('NTP', '/ntp', node, body);
}
