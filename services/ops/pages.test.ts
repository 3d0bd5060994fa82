import { protocolGaps } from './tracker.js';
import t from 'tap';
import { filterLeases, readLeaseQuery, renderDns, renderHome, renderLeases, renderNode, renderNodes, renderNtp, type HomeData } from './pages.js';
import { renderExplain } from './explain-page.js';
import type { LeaseRow } from '../dhcp/leases-api.js';
import type { SubnetUsage } from '../dhcp/pool-usage.js';

// Renderers on fixed states: hostile values stay text, pool bars change colour at 80 and 90 %,
// empty states say so, and the lease search and filters select the right rows.

const HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', 'bell\u0007nul\u0000', 'x'.repeat(255), 'bad\ufffd\ud800utf8'];

function lease(i: number, over: Partial<LeaseRow> = {}): LeaseRow {
  return {
    ip: `10.0.0.${10 + i}`, mac: `52:54:00:00:00:${(i + 16).toString(16)}`, hostname: `node${i}`, clientId: null, state: 'bound',
    expiresAt: '2026-01-01T00:00:00.000Z', expiresInS: 3600, subnet: '10.0.0.0/24', index: 100 + i, ackedBy: 'lan-a', ...over,
  };
}

function usage(assigned: number, size = 100): SubnetUsage {
  return { subnet: '10.0.0.0/24', pools: [{ subnet: '10.0.0.0/24', pool: '10.0.0.100-10.0.0.199', size, assigned, declined: 0, reservedInside: 0, ratio: assigned / size }], reservedOutside: 2, reservations: 3, leases: { bound: assigned, declined: 0, released: 0, expired: 0 } };
}

/** No markup from the data: only the tags the template itself writes. */
function assertInert(t: { notMatch(found: string, pattern: RegExp, message: string): unknown }, page: string): void {
  t.notMatch(page, /<script/i, 'no script element');
  t.notMatch(page, /<img/i, 'no img element');
  t.notMatch(page, /onerror=alert\(1\)>/, 'no live attribute');
  t.notMatch(page, /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/, 'no raw control characters');
  t.notMatch(page, /[\ud800-\udbff](?![\udc00-\udfff])/, 'no lone surrogate');
}

t.test('hostile host names stay text on the leases, nodes, explain and DNS pages', async (t) => {
  const rows = HOSTILE.map((h, i) => lease(i, { hostname: h, clientId: h }));
  const page = renderLeases(rows, [usage(5)], readLeaseQuery(new URLSearchParams()), '<node>');
  assertInert(t, page);
  t.match(page, '&lt;script&gt;alert(1)&lt;/script&gt;');
  t.match(page, '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
  t.match(page, 'bell\\x07nul\\x00');
  t.match(page, 'x'.repeat(255));
  t.match(page, '&lt;node&gt;', 'the node name is escaped too');
  const nodes = renderNodes(HOSTILE.map((h, i) => ({ mac: `52:54:00:00:00:0${i}`, ip: null, hostname: h, reserved: false, name: h, profile: null, profileUnknown: false, group: null, assignedGeneration: null, runningGeneration: null, lease: 'none' as const, leaseExpiresInS: null, last: { at: 'x', event: h, detail: h }, lastAgoS: 1, bootEvents: 1 })), 'n');
  assertInert(t, nodes);
  const detail = renderNode({ mac: '52:54:00:00:00:01', ip: null, hostname: HOSTILE[0]!, reserved: false, name: HOSTILE[1]!, profile: HOSTILE[2]!, profileUnknown: true, group: null, assignedGeneration: null, runningGeneration: null, lease: 'none', leaseExpiresInS: null, last: null, lastAgoS: null, bootEvents: 1, events: [{ at: 't', event: HOSTILE[1]!, detail: HOSTILE[2]! }] }, 'n');
  assertInert(t, detail);
  const dns = renderDns({ serial: 3, zones: ['lan'], listening: [], records: [{ zone: 'lan', name: 'x.lan', type: 'TXT', ttl: 60, data: `"${HOSTILE[0]}"`, source: 'operator' }] }, 'n');
  assertInert(t, dns);
  const explain = renderExplain(HOSTILE[1]!, { status: 400, body: { error: `"${HOSTILE[0]}" is not something explain knows` } }, 'n');
  assertInert(t, explain);
});

t.test('the status page escapes member, event and finding text', async (t) => {
  const d: HomeData = {
    node: 'lan-a', version: '0.1.0', uptimeSeconds: 5, mode: 'cluster', role: 'leader', leader: 'lan-a', term: 3, quorum: true, witness: 'w',
    members: [{ name: 'lan-a', kind: 'voter', local: true, address: '10.0.0.2', role: 'leader', term: 3, commitIndex: 9, appliedIndex: 9, lagEntries: 0, lastContact: 'this node', clockOffsetMs: 0, version: '0.1.0', configHash: 'abcdef0123456789', missing: [] },
      { name: 'lan-b', kind: 'voter', local: false, address: '10.0.0.3', role: 'follower', term: null, commitIndex: 7, appliedIndex: null, lagEntries: 2, lastContact: null, clockOffsetMs: null, version: null, configHash: null, ackAudit: { lostTotal: 0, audits: 1, checked: 14 }, missing: ['term', 'version'] }],
    vip: { address: '10.0.0.1/24', held: true, holder: 'lan-a', since: '2026-01-01T00:00:00.000Z' }, lastFailover: null,
    services: [{ name: 'dhcp', listening: ['udp 0.0.0.0:67'], summary: HOSTILE[0]! }],
    findings: [{ id: 'x', severity: 'error', evidence: HOSTILE[1]!, fix: HOSTILE[0]! }],
    events: [{ at: 't', kind: 'dhcp', text: `lease 10.0.0.5 to m (${HOSTILE[0]})`, index: 4 }],
    warnings: [],
  };
  const page = renderHome(d, Date.parse('2026-01-01T00:01:00.000Z'));
  assertInert(t, page);
  t.match(page, 'data-testid="member-lan-a-commit">9<');
  t.match(page, 'data-testid="member-lan-b-lag">2<');
  t.match(page, 'data-testid="member-lan-b-acked-lost">0 (its last audit checked 14 ACKs)<', 'each member\'s own ACK audit, as it reports it');
  t.notMatch(page, 'member-lan-a-acked-lost', 'not shown for a member that reports none');
  t.match(page, 'Not known here: term, version.');
  t.match(page, 'data-testid="vip-holder">lan-a<');
  t.match(page, '(1m0s ago)');
  t.match(page, 'data-testid="failover-none"');
  t.notMatch(page, 'failover-gaps', 'no gap table before any failover');
  const record = { at: '2026-01-01T00:00:30.000Z', from: 'lan-a', to: 'lan-b', leader: 'lan-b', gapMs: 60, parts: [['release', 5], ['vote', 12], ['lease wait', 3], ['ip addr', 30], ['sockets bound', 4], ['first GARP', 6]] as Array<[string, number]> };
  const after = renderHome({ ...d, lastFailover: record, gaps: protocolGaps(record, null) }, Date.parse('2026-01-01T00:01:00.000Z'));
  t.match(after, 'data-testid="failover-gap">60 ms<');
  t.match(after, 'data-testid="failover-gap-dns-transfer">60 ms<');
  t.match(after, 'data-testid="failover-gap-dhcp-transfer">20 ms<', 'DHCP is back once the new leader\'s lease is valid');
  t.match(after, 'data-testid="failover-gap-dns-transfer-method">derived<');
  const probed = renderHome({ ...d, lastFailover: record, gaps: protocolGaps(record, null, { transfer: { at: 'a', trigger: 'transfer', from: 'lan-a', target: '10.0.0.1', since: 'VIP released here', gaps: [{ protocol: 'vip', seconds: 0.075, probes: 6 }, { protocol: 'dns', seconds: 0.075, probes: 3 }, { protocol: 'tftp', seconds: 0.11, probes: 2 }] } }) }, 0);
  t.match(probed, 'data-testid="failover-gap-dns-transfer">75 ms<', 'the probed figure');
  t.match(probed, 'data-testid="failover-gap-dns-transfer-method">probed<');
  t.match(probed, 'data-testid="failover-gap-tftp-transfer">110 ms<');
  t.match(probed, 'data-testid="failover-gap-ntp-transfer-method">derived<', 'NTP not probed here: derived, and says so');
  t.match(probed, 'data-testid="failover-gap-dhcp-transfer-method">derived<');
  t.notMatch(after, 'data-testid="acked-lost"', 'no ACK audit line without the audit');
  const audited = renderHome({ ...d, ackAudit: { recorded: 3, capacity: 4096, audits: 1, lostTotal: 0, lost: [], due: false, lastAudit: { at: '2026-01-01T00:00:31.000Z', leader: 'lan-b', term: 4, checked: 3, kept: 2, superseded: 1, lost: 0, pending: 0, unknown: 0, newlyLost: 0 } } }, 0);
  t.match(audited, /data-testid="acked-lost"><span class="badge ok">0</);
  t.match(audited, 'under leader lan-b, term 4: 3 ACKs checked, 2 in the committed log, 1 superseded by a later command');
  const lost = renderHome({ ...d, ackAudit: { recorded: 1, capacity: 4096, audits: 1, lostTotal: 1, lost: [{ ip: '10.0.0.9', mac: HOSTILE[1]!, index: 8, term: 3, sentAt: 't' }], due: false, lastAudit: null } }, 0);
  t.match(lost, /data-testid="acked-lost"><span class="badge full">1</, 'a lost ACK is red');
  assertInert(t, lost);
});

t.test('/dns shows each member\'s serial as it reports it', async (t) => {
  const page = renderDns({ serial: 7, zones: ['lan'], listening: [], records: [], members: [
    { name: 'lan-a', dnsSerial: 7, appliedIndex: 50, local: true }, { name: 'lan-b', dnsSerial: 9, appliedIndex: 49, local: false }, { name: 'witness', dnsSerial: null, appliedIndex: 50, local: false }] }, 'lan-a');
  t.match(page, 'data-testid="dns-serial">7<');
  t.match(page, 'data-testid="dns-serial-lan-b">9 at applied index 49<');
  t.match(page, 'data-testid="dns-serial-witness">not reported');
  t.notMatch(page, 'dns-serial-lan-a', 'this node is shown once');
});

t.test('pool bars: green below 80 %, orange from 80 %, red from 90 %', async (t) => {
  const level = (assigned: number): string => /data-testid="pool" data-level="(\w+)"/.exec(renderLeases([], [usage(assigned)], readLeaseQuery(new URLSearchParams()), 'n'))![1]!;
  t.equal(level(79), 'ok');
  t.equal(level(80), 'warn');
  t.equal(level(89), 'warn');
  t.equal(level(90), 'full');
  t.equal(level(100), 'full');
  const page = renderLeases([], [usage(85)], readLeaseQuery(new URLSearchParams()), 'n');
  t.match(page, '<rect class="warn" width="85"');
  t.match(page, 'data-testid="reserved-outside">2<', 'reservations outside the pool are counted apart');
});

t.test('empty states', async (t) => {
  t.match(renderLeases([], [], readLeaseQuery(new URLSearchParams()), 'n'), 'DHCP is not enabled on this node');
  t.match(renderLeases([], [usage(0)], readLeaseQuery(new URLSearchParams()), 'n'), 'data-testid="leases-none"');
  t.match(renderNodes([], 'n'), 'no compute nodes yet');
  t.match(renderDns(null, 'n'), 'DNS is not enabled');
  t.match(renderNtp(null, 'n'), 'NTP is not enabled');
  t.match(renderExplain('', null, 'n'), 'lanctl explain --simulate');
});

t.test('search and filters select rows; bad input becomes a message', async (t) => {
  const rows = [lease(1), lease(2, { hostname: 'printer', clientId: '01aabbccddeeff' }), lease(3, { state: 'released' }), lease(4, { subnet: '10.1.0.0/24' })];
  const pick = (q: string): string[] => filterLeases(rows, readLeaseQuery(new URLSearchParams(q))).map((r) => r.ip);
  t.same(pick(''), ['10.0.0.11', '10.0.0.12', '10.0.0.14'], 'active by default');
  t.same(pick('state=all'), ['10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14']);
  t.same(pick('state=released'), ['10.0.0.13']);
  t.same(pick('q=print'), ['10.0.0.12'], 'partial host name');
  t.same(pick('q=PRINT'), ['10.0.0.12'], 'case-insensitive');
  t.same(pick('q=0.0.11'), ['10.0.0.11'], 'partial IP');
  t.same(pick('q=00:00:12'), ['10.0.0.12'], 'partial MAC');
  t.same(pick('q=00-00-12'), ['10.0.0.12'], 'MAC with dashes');
  t.same(pick('q=bb:cc:dd'), ['10.0.0.12'], 'partial client-id');
  t.same(pick('subnet=10.1.0.0/24'), ['10.0.0.14']);
  const bad = readLeaseQuery(new URLSearchParams('q=<x>&state=nope&page=zz'));
  t.equal(bad.q, '');
  t.equal(bad.state, 'active');
  t.equal(bad.page, 1);
  t.equal(bad.problems.length, 3);
  const page = renderLeases(rows, [], bad, 'n');
  t.match(page, 'data-testid="query-problem"');
  t.match(page, 'search &quot;&lt;x&gt;&quot; can&#39;t be used');
});

t.test('each lease row names the log index and the node that ACKed it; an entry without one says unknown', async (t) => {
  const page = renderLeases([lease(1), lease(2, { index: null, ackedBy: null }), lease(3, { ackedBy: HOSTILE[1]! })], [], readLeaseQuery(new URLSearchParams()), 'n');
  const cells = [...page.matchAll(/data-testid="lease-acked-by">([^<]*)</g)].map((m) => m[1]);
  t.same(cells, ['lan-a', 'unknown', '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;']);
  t.same([...page.matchAll(/data-testid="lease-index">([^<]*)</g)].map((m) => m[1]), ['101', '-', '103']);
  assertInert(t, page);
});

t.test('paging: 50 rows a page with next/previous links that keep the filters', async (t) => {
  const rows = Array.from({ length: 120 }, (_, i) => lease(i, { ip: `10.0.${Math.floor(i / 200)}.${i + 1}`, hostname: 'h' }));
  const p1 = renderLeases(rows, [], readLeaseQuery(new URLSearchParams('q=h')), 'n');
  t.equal((p1.match(/data-testid="lease-row"/g) ?? []).length, 50);
  t.match(p1, 'href="/leases?q=h&amp;page=2" rel="next"');
  const p3 = renderLeases(rows, [], readLeaseQuery(new URLSearchParams('q=h&page=3')), 'n');
  t.equal((p3.match(/data-testid="lease-row"/g) ?? []).length, 20);
  t.match(p3, 'rel="prev"');
  t.notMatch(p3, 'rel="next"');
});
