// Member reports on their own (no sockets): two boards exchange reports through manual clocks 2.5 s
// apart and each works out the other's offset from both directions' stamps; the whole boot file list
// travels once and is kept; lag is counted from the highest commit; hostile bytes decode to errors.
import t from 'tap';
import fc from 'fast-check';
import { ManualClock } from '../test/support/manual-clock.js';
import { MemberStatusBoard, clockOffset, decodeReport, encodeReport, memberRows, type LocalReport } from './member-status.js';

const local = (node: string, over: Partial<LocalReport> = {}): LocalReport => ({
  node, version: '0.1.0', configHash: 'abc', role: 'follower', leader: 'lan-a', term: 4, commitIndex: 90, appliedIndex: 88, lastIndex: 90,
  walFsyncP99Ms: 2.5, bootFiles: { digest: 'd1', count: 1, files: [{ path: 'boot.scr.uimg', sha256: 'f'.repeat(64), bytes: 512 }] }, ...over,
});

t.test('two boards: round-trip offset, boot files sent whole once and kept, reports name their member', async (t) => {
  const ca = new ManualClock(Date.UTC(2026, 0, 1), 0);
  const cb = new ManualClock(Date.UTC(2026, 0, 1) + 2500, 0); // b's wall clock is 2.5 s ahead
  const a = new MemberStatusBoard({ self: 'lan-a', clock: ca, local: () => local('lan-a', { role: 'leader', commitIndex: 100, appliedIndex: 100, lastIndex: 100 }) });
  const b = new MemberStatusBoard({ self: 'lan-b', clock: cb, local: () => local('lan-b') });
  const step = (ms: number): void => { ca.advance(ms); cb.advance(ms); };
  // a -> b takes 3 ms, b -> a takes 5 ms.
  let wire = a.outgoing('lan-b', true); step(3); b.incoming('lan-a', wire);
  t.equal(b.members()['lan-a']?.offsetMethod, 'one-way', 'the first report has no echo');
  t.equal(b.members()['lan-a']?.clockOffsetMs, -2503, 'one-way: off by the transit time');
  step(400);
  wire = b.outgoing('lan-a', true); step(5); a.incoming('lan-b', wire);
  const atA = a.members()['lan-b']!;
  t.equal(atA.offsetMethod, 'round-trip');
  t.equal(atA.roundTripMs, 8);
  t.equal(atA.clockOffsetMs, 2499, 'within half the round trip of the true 2500 ms');
  t.equal(atA.report.term, 4);
  t.equal(atA.report.version, '0.1.0');
  t.same(atA.bootFiles?.map((f) => f.path), ['boot.scr.uimg']);
  step(1000);
  wire = b.outgoing('lan-a', false);
  t.notOk(JSON.parse(Buffer.from(wire).toString()).bootFiles.files, 'unchanged boot files: only the digest travels');
  a.incoming('lan-b', wire);
  t.same(a.members()['lan-b']?.bootFiles?.map((f) => f.path), ['boot.scr.uimg'], 'the list is kept while the digest holds');
  t.equal(a.members()['lan-b']?.lastContactMs, 0);
  step(700);
  t.equal(a.members()['lan-b']?.lastContactMs, 700);
  a.incoming('lan-c', b.outgoing('lan-a', false));
  t.same(Object.keys(a.members()), ['lan-b'], 'a report under another member name is dropped');
  const rows = memberRows(['lan-a', 'lan-b', 'witness'], local('lan-a', { commitIndex: 100, appliedIndex: 100 }), a.members());
  t.same(rows.map((r) => [r.name, r.reported, r.lagEntries]), [['lan-a', true, 0], ['lan-b', true, 12], ['witness', false, null]]);
  const view = a.members()['lan-b']!;
  const at = (appliedIndex: number, stateHash: string): typeof view => ({ ...view, report: { ...view.report, appliedIndex, stateHash } });
  const same = (v: typeof view): boolean | null => memberRows(['lan-a', 'lan-b'], local('lan-a', { appliedIndex: 88, stateHash: 'h1' }), { 'lan-b': v })[1]!.sameState;
  t.equal(same(at(88, 'h1')), true, 'same index, same hash');
  t.equal(same(at(88, 'h2')), false, 'same index, another hash: diverged');
  t.equal(same(at(87, 'h2')), null, 'another index: not comparable');
});

t.test('an echo that is not one of our stamps, or a negative round trip, falls back to one-way', async (t) => {
  t.equal(clockOffset({ sentWallMs: 1000, echo: { wallMs: 5, rxWallMs: 6 } }, 900, () => false).method, 'one-way');
  t.equal(clockOffset({ sentWallMs: 1000, echo: { wallMs: 950, rxWallMs: 100 } }, 960, () => true).method, 'one-way', 'a clock step between stamps');
});

t.test('hostile bytes never throw and never decode into a report', async (t) => {
  const good = encodeReport({ ...local('lan-b'), sentWallMs: 1, echo: null });
  t.ok(decodeReport(good).ok);
  for (const bad of ['', 'null', '[]', '{"node":""}', JSON.stringify({ ...local('x'.repeat(64)), sentWallMs: 1, echo: null }), JSON.stringify({ ...local('b'), term: -1, sentWallMs: 1, echo: null }),
    JSON.stringify({ ...local('b'), bootFiles: { digest: 'd', count: 1, files: [{ path: 1 }] }, sentWallMs: 1, echo: null })]) {
    t.notOk(decodeReport(Buffer.from(bad)).ok, `refused: ${bad.slice(0, 40)}`);
  }
  t.notOk(decodeReport(new Uint8Array([0xff, 0xfe])).ok, 'invalid UTF-8');
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => { decodeReport(bytes); }), { numRuns: 500 });
});

t.test('reports from before dnsSerial and vipHeld still decode; wrong types do not', async (t) => {
  const { dnsSerial: _s, vipHeld: _v, ...old } = { ...local('lan-b'), dnsSerial: 3, vipHeld: true, sentWallMs: 1, echo: null };
  const r = decodeReport(Buffer.from(JSON.stringify(old)));
  t.ok(r.ok && r.value.dnsSerial === null && r.value.vipHeld === null, 'absent: null');
  const full = decodeReport(encodeReport({ ...local('lan-b'), dnsSerial: 3, vipHeld: true, sentWallMs: 1, echo: null }));
  t.ok(full.ok && full.value.dnsSerial === 3 && full.value.vipHeld === true);
  t.notOk(decodeReport(Buffer.from(JSON.stringify({ ...old, vipHeld: 'yes' }))).ok);
  t.notOk(decodeReport(Buffer.from(JSON.stringify({ ...old, dnsSerial: -1 }))).ok);
});

t.test('a member reports its ACK audit; reports from before it decode to null; wrong shapes do not decode', async (t) => {
  const base = { ...local('lan-b'), sentWallMs: 1, echo: null };
  const withAudit = decodeReport(encodeReport({ ...base, ackAudit: { lostTotal: 0, audits: 2, checked: 14 } }));
  t.ok(withAudit.ok && withAudit.value.ackAudit?.checked === 14 && withAudit.value.ackAudit.lostTotal === 0);
  const old = decodeReport(Buffer.from(JSON.stringify(base)));
  t.ok(old.ok && old.value.ackAudit === null, 'absent: null');
  for (const bad of [{ lostTotal: -1, audits: 0, checked: null }, { lostTotal: 0, audits: 1 }, 'zero', { lostTotal: 0, audits: 1, checked: 1.5 }]) {
    t.notOk(decodeReport(Buffer.from(JSON.stringify({ ...base, ackAudit: bad }))).ok, `refused: ${JSON.stringify(bad)}`);
  }
  const rows = memberRows(['lan-a', 'lan-b'], local('lan-a', { ackAudit: { lostTotal: 0, audits: 0, checked: null } }), { 'lan-b': { report: withAudit.ok ? withAudit.value : base as never, receivedAt: 'x', lastContactMs: 10, clockOffsetMs: 0, offsetMethod: 'round-trip' } as never });
  t.same(rows.map((r) => r.ackAudit), [{ lostTotal: 0, audits: 0, checked: null }, { lostTotal: 0, audits: 2, checked: 14 }]);
});

t.test('a member reports its degraded mode and VIP holding (the hand-back); reports without it decode; wrong shapes do not', async (t) => {
  const base = { ...local('lan-b'), sentWallMs: 1, echo: null };
  const r = decodeReport(encodeReport({ ...base, degradedVip: { active: true, held: true, noQuorumMs: 6100 } }));
  t.ok(r.ok && r.value.degradedVip?.held === true && r.value.degradedVip.active && r.value.degradedVip.noQuorumMs === 6100);
  const old = decodeReport(Buffer.from(JSON.stringify(base)));
  t.ok(old.ok && old.value.degradedVip === undefined, 'absent (degraded mode off there, an older version): no field');
  for (const bad of [{ active: true, held: 'yes', noQuorumMs: 0 }, { active: true, held: true }, { active: false, held: false, noQuorumMs: -1 }, 7]) {
    t.notOk(decodeReport(Buffer.from(JSON.stringify({ ...base, degradedVip: bad }))).ok, `refused: ${JSON.stringify(bad)}`);
  }
});
