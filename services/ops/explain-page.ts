import type { ApiResponse } from '../../lib/control-server.js';
import { html, type Html } from './html.js';
import { layout } from './pages.js';
import { ACCEPTED_FORMS, type DhcpExplain, type DnsExplain } from './explain.js';

// /explain?q=: the same answer as `lanctl explain Q --json`, as a page.

const dash = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v));

function dhcpBlock(d: DhcpExplain): Html {
  return html`<h2>DHCP${d.simulated ? ' (simulated DISCOVER, nothing sent)' : ''}</h2>
<div class="card"><dl><dt>MAC</dt><dd class="mono" data-testid="explain-mac">${d.mac}</dd><dt>decision</dt><dd data-testid="explain-decision">${d.decision}</dd>
<dt>subnet</dt><dd data-testid="explain-subnet">${dash(d.subnet.id)}</dd><dt>why</dt><dd>${d.subnet.why}</dd>
<dt>reserved by MAC</dt><dd data-testid="explain-reservation-mac">${dash(d.reservation.byMac)}</dd><dt>reserved by client-id</dt><dd>${dash(d.reservation.byClientId)}</dd></dl>
${d.reservation.notes.map((n) => html`<p class="message" data-testid="explain-note">${n}</p>`)}</div>
${d.lease === null ? html`<p class="muted">no lease in the replicated state</p>` : html`<h2>Lease</h2><div class="card"><dl><dt>address</dt><dd class="mono" data-testid="explain-lease-ip">${d.lease.ip}</dd><dt>state</dt><dd>${d.lease.state}</dd>
<dt>host name</dt><dd>${dash(d.lease.hostname)}</dd><dt>client-id</dt><dd class="mono">${dash(d.lease.clientId)}</dd><dt>committed at log index</dt><dd data-testid="explain-lease-index">${dash(d.lease.index)}</dd><dt>ACKed by</dt><dd data-testid="explain-lease-acked-by">${d.lease.ackedBy ?? 'unknown'}</dd>
<dt>granted</dt><dd>${d.lease.grantedAt}</dd><dt>ends</dt><dd>${d.lease.expiresAt}</dd></dl></div>`}
<h2>Boot rules</h2><p data-testid="explain-boot">${d.boot.result}</p>${d.boot.rules.length === 0 ? '' : html`<div class="scroll"><table><thead><tr><th>rule</th><th>matched</th><th>deciding field</th></tr></thead><tbody>
${d.boot.rules.map((r) => html`<tr><td>${r.rule}</td><td>${r.matched ? 'yes' : 'no'}</td><td class="wrap">${r.deciding}</td></tr>`)}</tbody></table></div>`}
<h2>Options</h2><div class="scroll"><table data-testid="explain-options"><thead><tr><th>code</th><th>option</th><th>value</th><th>from</th></tr></thead><tbody>
${d.options.map((o) => html`<tr><td>${o.code}</td><td>${o.name}</td><td class="mono wrap">${o.value}</td><td class="mono">${o.source}</td></tr>`)}</tbody></table></div>
<h2>History</h2>${d.history.length === 0 ? html`<p class="muted">no events</p>` : html`<div class="scroll"><table><thead><tr><th>when</th><th>event</th><th>detail</th></tr></thead><tbody>
${d.history.map((e) => html`<tr><td class="mono">${e.at}</td><td>${e.event}</td><td class="wrap">${dash(e.detail)}</td></tr>`)}</tbody></table></div>`}`;
}

function dnsBlock(d: DnsExplain): Html {
  return html`<h2>DNS: ${d.name}</h2><div class="card"><dl><dt>zone</dt><dd data-testid="explain-zone">${dash(d.zone)}</dd><dt>answer</dt><dd data-testid="explain-dns-how">${d.how}</dd></dl></div>
${d.answers.length === 0 ? '' : html`<div class="scroll"><table data-testid="explain-dns"><thead><tr><th>type</th><th>ttl</th><th>data</th><th>source</th></tr></thead><tbody>
${d.answers.map((a) => html`<tr><td>${a.type}</td><td>${a.ttl}</td><td class="mono wrap">${a.data}</td><td>${a.source}</td></tr>`)}</tbody></table></div>`}`;
}

export function renderExplain(q: string, reply: ApiResponse | null, node: string): string {
  const form = html`<form class="filters" method="get" action="/explain"><label>MAC, address or name<input name="q" value="${q}" maxlength="200" data-testid="explain-q"></label><button type="submit">Explain</button></form>`;
  let body: Html;
  if (reply === null) body = html`<p class="muted">Give ${ACCEPTED_FORMS}. The same answer: <code>lanctl explain Q</code>; for a client never seen: <code>lanctl explain --simulate --mac M --arch N</code>.</p>`;
  else if (reply.status !== 200) body = html`<p class="message error" data-testid="explain-error">${(reply.body as { error?: string }).error ?? `error ${reply.status}`}</p>`;
  else {
    const r = reply.body as { dhcp: DhcpExplain | null; dns: DnsExplain[] };
    body = html`${r.dhcp === null ? '' : dhcpBlock(r.dhcp)}${r.dns.map(dnsBlock)}`;
  }
  return layout('Explain', '/explain', node, html`${form}${body}`);
}
