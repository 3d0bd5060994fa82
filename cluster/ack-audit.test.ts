import t from 'tap';
import fc from 'fast-check';
import { AckLedger, auditAcks, describeAckAudit, judgeAck, type AckRecord, type AuditView } from './ack-audit.js';
import { seedFromEnv } from '../test/support/seeded.js';

// The ACK audit judges each recorded ACK against the committed log: properties over random logs
// where a new leader replaced an old leader's tail (ACKs in the kept prefix are kept, ACKs in the
// replaced tail are lost, whether or not the commit reached them yet), the lease fallback for
// compacted indexes and the etcd backend, and the ledger's timing (audit only once settled, each
// lost ACK counted once).

const ack = (index: number, term: number | null, over: Partial<AckRecord> = {}): AckRecord => ({ index, term, ip: 0x0a000000 + index, mac: `52:54:00:00:00:${(index % 256).toString(16).padStart(2, '0')}`, at: 1000 + index, sentAt: 5000 + index, ...over });

/** A view of a log given as its terms (index i has terms[i - 1]), committed up to `commit`. */
function logView(terms: readonly number[], commit: number, leases: AuditView['lease'] = () => undefined): AuditView {
  return { commitIndex: commit, committedTerm: (i) => (i >= 1 && i <= commit ? terms[i - 1] : undefined), lease: leases };
}

t.test('property: after a new leader replaces an old tail, exactly the ACKs in the replaced tail count as lost', async (t) => {
  const seed = seedFromEnv(13);
  const scenario = fc.record({
    prefix: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 30 }),
    oldTail: fc.integer({ min: 0, max: 20 }),
    newTail: fc.integer({ min: 1, max: 20 }),
    commitInNew: fc.nat(),
    acked: fc.array(fc.nat(), { maxLength: 40 }),
  });
  fc.assert(fc.property(scenario, ({ prefix, oldTail, newTail, commitInNew, acked }) => {
    const prefixTerms = [...prefix].sort((a, b) => a - b); // terms never go down along a log
    const oldTerm = (prefixTerms.at(-1) ?? 1) + 1;
    const newTerm = oldTerm + 1;
    const oldLog = [...prefixTerms, ...Array<number>(oldTail).fill(oldTerm)];
    const finalLog = [...prefixTerms, ...Array<number>(newTail).fill(newTerm)];
    // The final log is settled: its commit lies in the new leader's own entries.
    const commit = prefixTerms.length + 1 + (commitInNew % newTail);
    if (oldLog.length === 0) return;
    // ACKs as the old leader recorded them (the ones in its tail were never committed: the
    // durability promise forbids ACKing those; built here on purpose).
    const acks = acked.map((n) => { const index = 1 + (n % oldLog.length); return ack(index, oldLog[index - 1]!); });
    const r = auditAcks(acks, logView(finalLog, commit), newTerm);
    const expectLost = acks.filter((a) => a.index > prefixTerms.length).length;
    if (r.lost !== expectLost || r.kept !== acks.length - expectLost || r.pending !== 0) throw new Error(`lost ${r.lost} (expected ${expectLost}), kept ${r.kept}, pending ${r.pending}`);
  }), { seed, numRuns: 400 });
  t.pass(`400 random logs (seed ${seed}, LANHA_SEED replays)`);
});

t.test('property: ACKs of committed entries in a log that only grew are all kept', async (t) => {
  const seed = seedFromEnv(14);
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 60 }), fc.array(fc.nat(), { maxLength: 30 }), (raw, picks) => {
    const terms = [...raw].sort((a, b) => a - b);
    const acks = picks.map((n) => { const index = 1 + (n % terms.length); return ack(index, terms[index - 1]!); });
    const r = auditAcks(acks, logView(terms, terms.length), terms.at(-1)!);
    if (r.kept !== acks.length) throw new Error(`kept ${r.kept} of ${acks.length}`);
  }), { seed, numRuns: 300 });
  t.pass(`300 random logs (seed ${seed})`);
});

t.test('a truncated uncommitted tail that was ACKed counts as lost; one not ACKed counts nothing', async (t) => {
  // Old leader (term 2) appended 4..6 and, against the promise, ACKed 5; the new leader (term 3)
  // wrote 4..5 and committed up to 5.
  const finalLog = [1, 1, 2, 3, 3];
  t.equal(judgeAck(ack(5, 2), logView(finalLog, 5), 3), 'lost', 'index 5 now holds a term-3 entry');
  t.equal(judgeAck(ack(6, 2), logView(finalLog, 5), 3), 'lost', 'past the commit, from a term older than the settled one: it can never come back');
  t.equal(judgeAck(ack(3, 2), logView(finalLog, 5), 3), 'kept', 'the committed prefix');
  t.equal(auditAcks([ack(3, 2)], logView(finalLog, 5), 3).lost, 0, 'the ACKs that were sent (all committed) count 0 lost');
  t.equal(judgeAck(ack(7, 3), logView(finalLog, 5), 3), 'pending', 'past the commit in the current term: not decided yet');
  t.equal(judgeAck(ack(6, 2), logView(finalLog, 5), null), 'pending', 'unsettled: not decided yet');
});

t.test('compacted indexes and the etcd backend: the lease decides', async (t) => {
  const leaseAt = (lease: { mac: string; index?: number; changedAt: number } | undefined): AuditView => ({ commitIndex: 100, committedTerm: () => undefined, lease: () => lease });
  const a = ack(10, 2, { mac: 'm', at: 500 });
  t.equal(judgeAck(a, leaseAt({ mac: 'm', index: 10, changedAt: 500 }), 3), 'kept', 'the lease still carries the ACKed index');
  t.equal(judgeAck(a, leaseAt({ mac: 'm', index: 12, changedAt: 600 }), 3), 'superseded', 'renewed later');
  t.equal(judgeAck(a, leaseAt({ mac: 'other', index: 40, changedAt: 900 }), 3), 'superseded', 'another client after it ended');
  t.equal(judgeAck(a, leaseAt({ mac: 'm', index: 8, changedAt: 400 }), 3), 'lost', 'the state holds an older grant: the ACKed one is gone');
  t.equal(judgeAck(a, leaseAt({ mac: 'other', index: 10, changedAt: 500 }), 3), 'lost', 'another client at the ACKed index');
  t.equal(judgeAck(a, leaseAt({ mac: 'm', changedAt: 700 }), 3), 'superseded', 'declined after the ACK (a decline carries no index)');
  t.equal(judgeAck(a, leaseAt({ mac: 'm', changedAt: 300 }), 3), 'unknown');
  t.equal(judgeAck(a, leaseAt(undefined), 3), 'unknown', 'no lease left to decide by');
  const etcd: AuditView = { commitIndex: 100, lease: () => ({ mac: 'm', index: 10, changedAt: 500 }) };
  t.equal(judgeAck(ack(10, null, { mac: 'm', at: 500 }), etcd, null), 'kept', 'etcd: no terms, the revision on the lease');
});

t.test('the ledger audits after a leadership change, once the new leader committed in its term and everything is applied here', async (t) => {
  const ledger = new AckLedger(8);
  let terms = [1, 1, 1];
  let commit = 3;
  const view = (): AuditView => logView(terms, commit);
  t.equal(ledger.observe({ leader: 'a', term: 1, commitIndex: 3, appliedIndex: 3 }, view(), 0), null, 'the first sample is no change');
  ledger.record(ack(2, 1));
  ledger.record(ack(3, 1));
  t.equal(ledger.observe({ leader: 'a', term: 1, commitIndex: 3, appliedIndex: 3 }, view(), 1), null, 'no change, no audit');
  t.equal(ledger.observe({ leader: null, term: 2, commitIndex: 3, appliedIndex: 3 }, view(), 2), null, 'no leader yet');
  t.equal(ledger.observe({ leader: 'b', term: 2, commitIndex: 3, appliedIndex: 3 }, view(), 3), null, 'the new leader has not committed in term 2');
  t.ok(ledger.summary().due);
  terms = [1, 1, 1, 2];
  commit = 4;
  t.equal(ledger.observe({ leader: 'b', term: 2, commitIndex: 4, appliedIndex: 3 }, view(), 4), null, 'committed but not applied here yet');
  const run = ledger.observe({ leader: 'b', term: 2, commitIndex: 4, appliedIndex: 4 }, view(), 5);
  t.match(run, { leader: 'b', term: 2, checked: 2, kept: 2, lost: 0, newlyLost: 0 });
  t.match(ledger.summary(), { audits: 1, lostTotal: 0, due: false, recorded: 2 });
  t.equal(ledger.observe({ leader: 'b', term: 2, commitIndex: 4, appliedIndex: 4 }, view(), 6), null, 'done until the next change');
});

t.test('a lost ACK is counted once across audits; the ring keeps the newest records', async (t) => {
  const ledger = new AckLedger(3);
  ledger.observe({ leader: 'a', term: 2, commitIndex: 2, appliedIndex: 2 }, logView([1, 2], 2), 0);
  ledger.record(ack(2, 2));
  ledger.record(ack(3, 2)); // the impossible ACK of an entry the next leader never had
  const final = logView([1, 2, 3], 3);
  t.match(ledger.observe({ leader: 'b', term: 3, commitIndex: 3, appliedIndex: 3 }, final, 1), { lost: 1, newlyLost: 1, kept: 1 });
  const later = logView([1, 2, 3, 4], 4);
  t.match(ledger.observe({ leader: 'a', term: 4, commitIndex: 4, appliedIndex: 4 }, later, 2), { lost: 1, newlyLost: 0, checked: 2 });
  t.match(ledger.summary(), { lostTotal: 1, audits: 2, lost: [{ index: 3, term: 2, ip: '10.0.0.3' }] });
  for (let i = 10; i < 15; i++) ledger.record(ack(i, 4));
  t.same(ledger.recorded.map((r) => r.index), [12, 13, 14], 'bounded: the oldest go first');
});

t.test('records loaded from before a restart are audited at the first settled sample', async (t) => {
  const ledger = new AckLedger();
  ledger.load([ack(1, 1), ack(2, 1)]);
  t.match(ledger.observe({ leader: 'b', term: 2, commitIndex: 3, appliedIndex: 3 }, logView([1, 1, 2], 3), 0), { kept: 2, lost: 0 });
});

t.test('the status line says the count and what it rests on', async (t) => {
  const ledger = new AckLedger();
  t.match(describeAckAudit(ledger.summary()), /^ACKed leases lost: 0 \(this node has sent no ACK/);
  ledger.record(ack(2, 1));
  ledger.observe({ leader: 'a', term: 1, commitIndex: 2, appliedIndex: 2 }, logView([1, 1], 2), 0);
  t.match(describeAckAudit(ledger.summary()), /^ACKed leases lost: 0 \(no audit yet: 1 ACK recorded, no leadership change since\)/);
  ledger.record(ack(3, 1));
  ledger.observe({ leader: 'b', term: 2, commitIndex: 3, appliedIndex: 3 }, logView([1, 1, 2], 3), Date.UTC(2026, 0, 1));
  t.equal(describeAckAudit(ledger.summary()), 'ACKed leases lost: 1 (last audit 2026-01-01T00:00:00.000Z under leader b, term 2: 2 ACKs checked, 1 in the committed log; 1 audit since start); lost: 10.0.0.3 52:54:00:00:00:03 (index 3, term 1)');
});

t.test('etcd: ACKs sharing one index (commands of one txn) are judged each on its own, across audits', async (t) => {
  const ledger = new AckLedger();
  // Index 40 carried two grants; the lease of 10.0.0.2 shows another MAC at that index (lost), 10.0.0.1 its own (kept).
  const leases: AuditView['lease'] = (ip) => (ip === 0x0a000001 ? { mac: 'm1', index: 40, changedAt: 1 } : { mac: 'other', index: 40, changedAt: 1 });
  const view: AuditView = { commitIndex: 41, lease: leases };
  ledger.observe({ leader: 'a', term: 1, commitIndex: 41, appliedIndex: 41 }, view, 0);
  ledger.record(ack(40, null, { ip: 0x0a000001, mac: 'm1' }));
  ledger.record(ack(40, null, { ip: 0x0a000002, mac: 'm2' }));
  t.match(ledger.observe({ leader: 'b', term: 2, commitIndex: 41, appliedIndex: 41 }, view, 1), { checked: 2, kept: 1, lost: 1, newlyLost: 1 });
  t.match(ledger.observe({ leader: 'a', term: 3, commitIndex: 41, appliedIndex: 41 }, view, 2), { checked: 2, kept: 1, lost: 1, newlyLost: 0 }, 'the kept one is judged again, not counted with the lost one');
});
