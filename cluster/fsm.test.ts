// Lease history compaction in the replicated state machine: released and expired leases are kept
// LEASE_HISTORY_MS of log time after their last change, then dropped from memory, the client
// indexes and snapshots, at the same entry on every replica (a restored one included).
import t from 'tap';
import { Fsm, LEASE_HISTORY_MS } from './fsm.js';
import { decodeCommand, encodeCommand, type Command } from './commands.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 5, 10, 15); // mid-hour, so "a new hour" is a real boundary
const LEASE_MS = 12 * HOUR;

function feeder(fsm: Fsm): { apply: (command: Command, at: number) => void; index: () => number } {
  let index = 0;
  return { apply: (command, at) => fsm.apply(++index, { at, command }), index: () => index };
}

const grant = (ip: number, mac: string, clientId?: string): Command =>
  ({ type: 'lease.grant', ip, mac, subnet: 's0', leaseMs: LEASE_MS, ...(clientId === undefined ? {} : { clientId }) });

t.test('released and expired leases are dropped LEASE_HISTORY_MS after they ended, not before', async (t) => {
  const fsm = new Fsm();
  const { apply } = feeder(fsm);
  apply(grant(10, 'aa:00:00:00:00:01', '01aa0000000001'), T0); // released below
  apply(grant(11, 'aa:00:00:00:00:02'), T0); // expires below
  apply(grant(12, 'aa:00:00:00:00:03'), T0); // renewed: stays bound
  apply({ type: 'lease.decline', ip: 13, mac: 'aa:00:00:00:00:04', quarantineMs: 100 * 24 * HOUR }, T0);
  apply({ type: 'lease.release', ip: 10, mac: 'aa:00:00:00:00:01' }, T0 + HOUR);
  apply({ type: 'lease.expire', ip: 11 }, T0 + LEASE_MS);
  t.equal(fsm.lease(11)?.state, 'expired');

  // Renew 12 every 6 hours so it stays bound; the log keeps moving through the hours.
  let at = T0 + LEASE_MS;
  const releasedDue = T0 + HOUR + LEASE_HISTORY_MS;
  while (at + 6 * HOUR < releasedDue) {
    at += 6 * HOUR;
    apply(grant(12, 'aa:00:00:00:00:03'), at);
  }
  t.equal(fsm.lease(10)?.state, 'released', 'a released lease is still there just before its history time is up');
  t.equal(fsm.leaseByMac('aa:00:00:00:00:01')?.ip, 10, 'and its client still finds it (its previous address)');

  // The first entry in the hour after the release's history time drops it; the expired one (ended
  // 11 hours later) stays until its own time.
  apply({ type: 'noop' }, releasedDue + HOUR);
  t.equal(fsm.lease(10), undefined, 'the released lease is gone');
  t.equal(fsm.leaseByMac('aa:00:00:00:00:01'), undefined, 'and from the MAC index');
  t.equal(fsm.leaseByClientId('01aa0000000001'), undefined, 'and from the client-id index');
  t.equal(fsm.lease(11)?.state, 'expired', 'the expired lease, 11 h younger, is kept');

  apply({ type: 'noop' }, T0 + LEASE_MS + LEASE_HISTORY_MS + HOUR);
  t.equal(fsm.lease(11), undefined, 'the expired lease goes once its own history time is up');
  t.equal(fsm.lease(12)?.state, 'bound', 'a bound lease (renewed) is never compacted');
  t.equal(fsm.lease(13)?.state, 'declined', 'a declined address stays quarantined until the leader expires it');
  t.same(fsm.snapshot().leases.map((l) => l.ip), [12, 13], 'snapshots carry only what is left');
});

t.test('a bound lease past its end is not dropped by compaction: only the leader expires it', async (t) => {
  const fsm = new Fsm();
  const { apply } = feeder(fsm);
  apply(grant(20, 'aa:00:00:00:00:20'), T0);
  apply({ type: 'noop' }, T0 + LEASE_MS + LEASE_HISTORY_MS + 2 * HOUR);
  t.equal(fsm.lease(20)?.state, 'bound');
});

t.test('compaction is deterministic: a replica restored from a snapshot mid-way ends with the same hash', async (t) => {
  const entries: Array<[Command, number]> = [];
  for (let i = 0; i < 40; i++) {
    const at = T0 + i * 5 * HOUR;
    const ip = 100 + (i % 12);
    const mac = `aa:00:00:00:01:${(i % 12).toString(16).padStart(2, '0')}`;
    entries.push([grant(ip, mac), at]);
    if (i % 3 === 0) entries.push([{ type: 'lease.release', ip, mac }, at + 1000]);
  }
  for (let i = 0; i < 60; i++) entries.push([{ type: 'noop' }, T0 + 200 * HOUR + i * 7 * HOUR]);

  const whole = new Fsm();
  const a = feeder(whole);
  const hashes: string[] = [];
  for (const [command, at] of entries) { a.apply(command, at); hashes.push(whole.hash()); }

  const cut = Math.floor(entries.length / 2);
  const first = new Fsm();
  const b = feeder(first);
  for (const [command, at] of entries.slice(0, cut)) b.apply(command, at);
  const restored = new Fsm();
  restored.restore(first.snapshot());
  for (let i = cut; i < entries.length; i++) {
    const [command, at] = entries[i]!;
    restored.apply(i + 1, { at, command });
    if (restored.hash() !== hashes[i]) { t.fail(`hash differs at entry ${i + 1}`); return; }
  }
  t.pass('every hash after the restore matches the replica that applied the whole log');
  t.ok(first.snapshot().leases.some((l) => l.state === 'released'), 'the snapshot taken half-way had released leases');
  t.notOk(whole.snapshot().leases.some((l) => l.state === 'released'), 'which compaction dropped after the restore point');
});

t.test('an address taken over by another client leaves no stale client-id index behind', async (t) => {
  const fsm = new Fsm();
  const { apply } = feeder(fsm);
  apply(grant(30, 'aa:00:00:00:00:30', '01aa0000000030'), T0);
  apply({ type: 'lease.release', ip: 30, mac: 'aa:00:00:00:00:30' }, T0 + 1000);
  apply(grant(30, 'aa:00:00:00:00:31', '01aa0000000031'), T0 + 2000);
  t.equal(fsm.leaseByClientId('01aa0000000030'), undefined, "the old client's id no longer finds the new client's lease");
  t.equal(fsm.leaseByMac('aa:00:00:00:00:30'), undefined, 'nor does its MAC');
  t.equal(fsm.leaseByClientId('01aa0000000031')?.mac, 'aa:00:00:00:00:31');
});

t.test('one MAC granted in two subnets (a duplicate MAC behind two relays) keeps both bindings; a move inside a subnet gives up the old one', async (t) => {
  // Two machines with one MAC on two VLANs: releasing the first one's binding when the second was
  // granted let the allocator give its address to a third client while the first still used it.
  const fsm = new Fsm();
  const { apply } = feeder(fsm);
  const mac = 'aa:00:00:00:00:31';
  apply({ type: 'lease.grant', ip: 100, mac, subnet: 's1', leaseMs: LEASE_MS }, T0);
  apply({ type: 'lease.grant', ip: 200, mac, subnet: 's2', leaseMs: LEASE_MS }, T0 + 1000);
  t.equal(fsm.lease(100)?.state, 'bound', 'the binding in the first subnet stays');
  t.equal(fsm.lease(200)?.state, 'bound');
  t.equal(fsm.leaseByMac(mac)?.ip, 200, 'the MAC index follows the latest grant');
  apply({ type: 'lease.grant', ip: 101, mac, subnet: 's1', leaseMs: LEASE_MS }, T0 + 2000);
  t.equal(fsm.lease(100)?.state, 'bound', 'a move inside s1 while the index points at s2 leaves s1\'s old binding alone');
  apply({ type: 'lease.grant', ip: 102, mac, subnet: 's1', leaseMs: LEASE_MS }, T0 + 3000);
  t.equal(fsm.lease(101)?.state, 'released', 'a move inside one subnet gives up the old address');
  const restored = new Fsm();
  restored.restore(fsm.snapshot());
  t.equal(restored.hash(), fsm.hash(), 'a replica restored from a snapshot agrees');
  t.equal(restored.leaseByMac(mac)?.ip, 102);
});

t.test('the proposer rides in the entry envelope: old entries without it still decode, a bad one is ignored', async (t) => {
  const grant = { type: 'lease.grant' as const, ip: 0x0a000005, mac: '02:00:00:00:00:05', subnet: '10.0.0.0/8', leaseMs: 60_000 };
  const round = decodeCommand(encodeCommand({ at: 7, by: 'lan-a', command: grant }));
  t.same(round, { ok: true, value: { at: 7, by: 'lan-a', command: grant }, level: 1, envelope: 1 });
  const old = decodeCommand(new TextEncoder().encode(JSON.stringify({ v: 1, at: 7, c: grant })));
  t.same(old, { ok: true, value: { at: 7, command: grant }, level: 1, envelope: 1 }, 'an entry written before `by` existed');
  for (const by of [5, '', 'x'.repeat(64), null]) {
    const r = decodeCommand(new TextEncoder().encode(JSON.stringify({ v: 1, at: 7, by, c: grant })));
    t.ok(r.ok && r.value.by === undefined, `by ${JSON.stringify(by)} is dropped, the entry still applies`);
  }
  const fsm = new Fsm();
  fsm.apply(1, { at: 7, by: 'lan-b', command: grant });
  fsm.apply(2, { at: 8, command: { ...grant, ip: 0x0a000006, mac: '02:00:00:00:00:06' } });
  t.equal(fsm.lease(0x0a000005)?.ackedBy, 'lan-b');
  t.equal(fsm.lease(0x0a000006)?.ackedBy, undefined, 'unknown when the entry does not say');
});

t.test('a MAC bound in two subnets: its live binding is found after the newer one ended; the index follows grants to others, declines, compaction and restore', async (t) => {
  // leaseByMac is the newest lease in any state; liveLeaseByMac must find the older binding that
  // still runs (DNS names, boot scripts and deploy targets of a node without a reserved IP).
  const fsm = new Fsm();
  const { apply } = feeder(fsm);
  const mac = 'aa:00:00:00:00:41';
  apply({ type: 'lease.grant', ip: 100, mac, subnet: 's1', leaseMs: LEASE_MS }, T0);
  apply({ type: 'lease.grant', ip: 200, mac, subnet: 's2', leaseMs: LEASE_MS }, T0 + 1000);
  t.equal(fsm.liveLeaseByMac(mac, T0 + 2000)?.ip, 200, 'both live: the newest');
  t.same(fsm.liveLeasesByMac(mac, T0 + 2000).map((l) => l.ip).sort(), [100, 200], 'and both listed');
  apply({ type: 'lease.release', ip: 200, mac }, T0 + 3000);
  t.equal(fsm.leaseByMac(mac)?.state, 'released', 'leaseByMac still gives the newest, released');
  t.equal(fsm.liveLeaseByMac(mac, T0 + 4000)?.ip, 100, 'the older binding that still runs is found');
  t.equal(fsm.liveLeaseByMac(mac, T0 + LEASE_MS + 1), undefined, 'none past its end');
  const restored = new Fsm();
  restored.restore(fsm.snapshot());
  t.equal(restored.liveLeaseByMac(mac, T0 + 4000)?.ip, 100, 'after a restore too');
  // Address 100 expires and goes to another MAC: it is no longer this MAC's.
  apply({ type: 'lease.expire', ip: 100 }, T0 + LEASE_MS + 1);
  apply({ type: 'lease.grant', ip: 100, mac: 'aa:00:00:00:00:42', subnet: 's1', leaseMs: LEASE_MS }, T0 + LEASE_MS + 2);
  t.same(fsm.liveLeasesByMac(mac, T0 + LEASE_MS + 3), [], 'the other MAC\'s binding is not listed for this one');
  t.equal(fsm.liveLeaseByMac('aa:00:00:00:00:42', T0 + LEASE_MS + 3)?.ip, 100);
  apply({ type: 'lease.decline', ip: 300, mac, quarantineMs: HOUR }, T0 + LEASE_MS + 4);
  t.equal(fsm.liveLeaseByMac(mac, T0 + LEASE_MS + 5), undefined, 'a declined address is no binding');
});
