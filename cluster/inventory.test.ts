// The inventory sub-state: nodes by name/MAC/IP, the bounded pending list, defensive apply, and
// (fast-check, seeded) that no command sequence ever gives two nodes one name, MAC or IP, and that a
// snapshot/restore round trip keeps the state machine's hash.
import t from 'tap';
import fc from 'fast-check';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { Inventory, NODES_MAX, PENDING_MAX, VENDOR_CLASS_MAX } from './inventory.js';
import { seedFromEnv } from '../test/support/seeded.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0);
const M1 = '52:54:00:00:00:01';
const M2 = '52:54:00:00:00:02';
const IP1 = 0x0a000015; // 10.0.0.21
const IP2 = 0x0a000016;

function feeder(fsm: Fsm): (command: Command, at?: number) => void {
  let index = 0;
  return (command, at = T0 + index * 1000) => fsm.apply(++index, { at, command });
}

t.test('add, lookups by name/MAC/IP, set, remove', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  const serial = fsm.serial;
  apply({ type: 'node.add', name: 'rack1', mac: M1, ip: IP1, profile: 'pi4', group: 'row1' });
  const inv = fsm.inventory;
  t.match(inv.byName('rack1'), { name: 'rack1', mac: M1, ip: IP1, profile: 'pi4', group: 'row1', addedAt: T0, changedAt: T0 });
  t.equal(inv.byMac(M1)?.name, 'rack1');
  t.equal(inv.byIp(IP1)?.name, 'rack1');
  t.equal(fsm.serial, serial + 1, 'a new node name bumps the zones\' serial');

  apply({ type: 'node.set', name: 'rack1', mac: M2, ip: IP2, profile: null });
  t.equal(inv.byMac(M1), undefined, 'the old MAC is free');
  t.equal(inv.byIp(IP1), undefined, 'the old IP is free');
  t.match(inv.byMac(M2), { name: 'rack1', ip: IP2, group: 'row1' });
  t.equal(inv.byName('rack1')?.profile, undefined, 'null clears a field');
  t.equal(inv.byName('rack1')?.addedAt, T0, 'addedAt stays');
  t.equal(inv.byName('rack1')?.changedAt, T0 + 1000, 'changedAt moves');

  apply({ type: 'node.trust', name: 'rack1', hostKey: 'ssh-ed25519 AAAA' });
  apply({ type: 'node.generation', name: 'rack1', assigned: 'g2', running: 'g1' });
  t.match(inv.byName('rack1'), { hostKey: 'ssh-ed25519 AAAA', assignedGeneration: 'g2', runningGeneration: 'g1' });
  const before = fsm.serial;
  apply({ type: 'node.generation', name: 'rack1', running: 'g2' });
  t.equal(inv.byName('rack1')?.assignedGeneration, 'g2', 'undefined keeps a field');
  t.equal(fsm.serial, before, 'generations and keys are not DNS changes');

  apply({ type: 'node.remove', name: 'rack1' });
  t.equal(inv.byName('rack1'), undefined);
  t.equal(inv.byMac(M2), undefined);
  t.equal(inv.byIp(IP2), undefined);
  t.same(inv.all(), []);
});

t.test('a clashing entry in the log is a no-op on every replica', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.add', name: 'a', mac: M1, ip: IP1 });
  apply({ type: 'node.add', name: 'b', mac: M2, ip: IP2 });
  const before = JSON.stringify({ inventory: fsm.inventory.snapshot(), serial: fsm.serial });
  apply({ type: 'node.add', name: 'a', mac: '52:54:00:00:00:09' }); // name taken
  apply({ type: 'node.add', name: 'c', mac: M1 }); // MAC taken
  apply({ type: 'node.add', name: 'c', mac: '52:54:00:00:00:09', ip: IP2 }); // IP taken
  apply({ type: 'node.set', name: 'a', mac: M2 }); // MAC of b
  apply({ type: 'node.set', name: 'a', ip: IP2 }); // IP of b
  apply({ type: 'node.set', name: 'zz', ip: 5 }); // no such node
  apply({ type: 'node.add', name: 'bad', mac: 'AA:BB' }); // malformed
  apply({ type: 'node.add', name: 'x'.repeat(64), mac: '52:54:00:00:00:0a' }); // malformed name
  apply({ type: 'node.remove', name: 'zz' });
  apply({ type: 'node.trust', name: 'zz', hostKey: 'ssh-ed25519 AAAA' });
  apply({ type: 'node.accept', name: 'b', mac: '52:54:00:00:00:0b' });
  t.equal(JSON.stringify({ inventory: fsm.inventory.snapshot(), serial: fsm.serial }), before, 'nothing changed, not even the zones\' serial');
  apply({ type: 'node.set', name: 'a', mac: M1, ip: IP1 });
  t.equal(fsm.inventory.byName('a')?.mac, M1, 'a node may "set" its own MAC and IP');
});

// A log entry the leader's checks never made (a hand-made log, an etcd key written by another
// client) still cannot put into the inventory what DNS, boot scripts and known_hosts would read unescaped.
t.test('hostile values in the log: refused or left out by apply, on every replica alike', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.add', name: 'a', mac: M1, ip: IP1 });
  const before = JSON.stringify(fsm.inventory.snapshot());
  for (const name of ['n1"; reset; echo "', 'n1 x', 'N1', 'n1\n', '-n1', 'n1.lan', '\u212aube', 'n\u0131', '']) {
    apply({ type: 'node.add', name, mac: M2 });
    apply({ type: 'node.accept', name, mac: M2 });
  }
  apply({ type: 'node.trust', name: 'a', hostKey: 'ssh-ed25519 AAAA\n10.0.0.9 ssh-ed25519 BBBB' });
  apply({ type: 'node.trust', name: 'a', hostKey: 'ssh-ed25519 AAAA comment' });
  apply({ type: 'node.trust', name: 'a', hostKey: '@cert-authority * ssh-ed25519 AAAA' });
  apply({ type: 'node.set', name: 'a', profile: 'pi4;reset' });
  apply({ type: 'node.set', name: 'a', group: 'g 1' });
  apply({ type: 'node.generation', name: 'a', assigned: '../../etc' });
  apply({ type: 'node.generation', name: 'a', running: 'g1"' });
  t.equal(JSON.stringify(fsm.inventory.snapshot()), before, 'no hostile name, key, profile, group or generation got in');
  apply({ type: 'node.add', name: 'b', mac: M2, profile: 'x$(reset)', group: 'rack1' });
  t.match(fsm.inventory.byName('b'), { name: 'b', group: 'rack1' }, 'a node whose entry holds a bad profile is added without it');
  t.equal(fsm.inventory.byName('b')?.profile, undefined);
  apply({ type: 'node.seen', mac: '52:54:00:00:00:03', vendorClass: 'PXE\u001b[2J\u202e' });
  t.equal(fsm.inventory.pendingByMac('52:54:00:00:00:03')?.vendorClass, 'PXE?[2J?', 'a vendor class keeps no control characters');
});

t.test('the inventory is bounded: past NODES_MAX a node.add is a no-op', async (t) => {
  const inv = new Inventory();
  const mac = (i: number): string => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  for (let i = 0; i < NODES_MAX + 5; i++) inv.apply({ type: 'node.add', name: `n${i}`, mac: mac(i) }, T0);
  t.equal(inv.size, NODES_MAX);
  t.equal(inv.byName(`n${NODES_MAX}`), undefined);
  inv.apply({ type: 'node.remove', name: 'n0' }, T0);
  inv.apply({ type: 'node.add', name: 'again', mac: mac(0) }, T0);
  t.equal(inv.byName('again')?.mac, mac(0), 'room again after a removal');
});

t.test('pending: seen, counted, accepted; known MACs never pending; bounded, oldest dropped', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.seen', mac: M1, arch: 22, vendorClass: 'U-Boot.armv8' }, T0);
  apply({ type: 'node.seen', mac: M1, vendorClass: 'x'.repeat(300) }, T0 + 60_000);
  const p = fsm.inventory.pendingByMac(M1);
  t.match(p, { mac: M1, firstSeen: T0, lastSeen: T0 + 60_000, arch: 22, count: 2 });
  t.equal(p?.vendorClass?.length, VENDOR_CLASS_MAX, 'a long vendor class is cut');
  apply({ type: 'node.accept', mac: M1, name: 'n1', ip: IP1 }, T0 + 70_000);
  t.equal(fsm.inventory.pendingByMac(M1), undefined, 'accepted: no longer pending');
  t.equal(fsm.inventory.byMac(M1)?.name, 'n1');
  apply({ type: 'node.seen', mac: M1 }, T0 + 80_000);
  t.equal(fsm.inventory.pendingByMac(M1), undefined, 'a known MAC is never pending');
  apply({ type: 'node.seen', mac: M2 }, T0 + 90_000);
  apply({ type: 'node.add', name: 'n2', mac: M2 }, T0 + 91_000);
  t.equal(fsm.inventory.pendingByMac(M2), undefined, 'adding a pending MAC by hand takes it off the list');

  const inv = new Inventory();
  const mac = (i: number): string => `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  for (let i = 0; i < PENDING_MAX + 10; i++) inv.apply({ type: 'node.seen', mac: mac(i) }, T0 + i);
  t.equal(inv.pending().length, PENDING_MAX, 'never more than PENDING_MAX');
  t.equal(inv.pendingByMac(mac(9)), undefined, 'the oldest went');
  t.ok(inv.pendingByMac(mac(10)), 'the next oldest stayed');
  inv.apply({ type: 'node.seen', mac: mac(10) }, T0 + 5_000); // seen again: now the newest
  inv.apply({ type: 'node.seen', mac: mac(5000) }, T0 + 5_001);
  t.ok(inv.pendingByMac(mac(10)), 'a MAC seen again is not the oldest any more');
  t.equal(inv.pendingByMac(mac(11)), undefined, 'the oldest by lastSeen went instead');
  // The eviction depends on content only: a restored copy evicts the same MAC.
  const copy = new Inventory();
  copy.restore(inv.snapshot());
  inv.apply({ type: 'node.seen', mac: mac(6000) }, T0 + 6_000);
  copy.apply({ type: 'node.seen', mac: mac(6000) }, T0 + 6_000);
  t.same(copy.snapshot(), inv.snapshot(), 'a restored replica drops the same MAC');
});

t.test('snapshots: empty inventory leaves the snapshot as before; round trip restores lookups', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'lease.grant', ip: IP1, mac: M1, subnet: '10.0.0.0/24', leaseMs: 1000 });
  t.notOk('inventory' in fsm.snapshot(), 'no inventory field without nodes');
  apply({ type: 'node.add', name: 'n1', mac: M1, ip: IP1, origin: 'config' });
  apply({ type: 'node.seen', mac: M2, arch: 11 });
  const copy = new Fsm();
  copy.restore(JSON.parse(JSON.stringify(fsm.snapshot())));
  t.equal(copy.hash(), fsm.hash());
  t.equal(copy.inventory.byIp(IP1)?.name, 'n1');
  t.ok(copy.inventory.wasSeeded('n1'), 'seeded names survive a snapshot');
  t.equal(copy.inventory.pendingByMac(M2)?.arch, 11);
  apply({ type: 'node.remove', name: 'n1' });
  t.ok(fsm.inventory.wasSeeded('n1'), 'removing a seeded node keeps it marked (config does not bring it back)');
  const old = new Fsm();
  const { inventory: _i, ...legacy } = copy.snapshot();
  old.restore(legacy);
  t.equal(old.inventory.size, 0, 'a snapshot from before the inventory restores to an empty one');
});

// ------------------------------------------------------------------------------------------------
// Properties over random command sequences (small domains so clashes are frequent).

const names = ['a', 'b', 'c', 'd', 'e'];
const macs = ['52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03', '52:54:00:00:00:04', '52:54:00:00:00:05', '52:54:00:00:00:06'];
const ips = [IP1, IP2, IP1 + 2, IP1 + 3];
const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });
const clearable = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null | undefined> => fc.oneof(fc.constant(undefined), fc.constant(null), arb);
const name = fc.constantFrom(...names);
const mac = fc.constantFrom(...macs);
const ip = fc.constantFrom(...ips);

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ name, mac, ip: opt(ip), profile: opt(fc.constantFrom('pi4', 'x86')) }).map((c) => strip({ type: 'node.add' as const, ...c })),
  fc.record({ name, mac: opt(mac), ip: clearable(ip), group: clearable(fc.constantFrom('g1', 'g2')) }).map((c) => strip({ type: 'node.set' as const, ...c })),
  name.map((n) => ({ type: 'node.remove' as const, name: n })),
  fc.record({ mac, arch: opt(fc.integer({ min: 0, max: 30 })) }).map((c) => strip({ type: 'node.seen' as const, ...c })),
  fc.record({ mac, name, ip: opt(ip) }).map((c) => strip({ type: 'node.accept' as const, ...c })),
  fc.record({ name, hostKey: fc.constantFrom(null, 'ssh-ed25519 AAAA') }).map((c) => ({ type: 'node.trust' as const, ...c })),
  fc.record({ name, assigned: clearable(fc.constantFrom('g1', 'g2')) }).map((c) => strip({ type: 'node.generation' as const, ...c })),
  fc.constant({ type: 'noop' as const }),
);

/** Drops undefined fields, as JSON in the log would. */
function strip(o: object): Command {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as unknown as Command;
}

t.test('property: no two nodes ever share a name, MAC or IP; the indexes agree with the records', async (t) => {
  const seed = seedFromEnv(11);
  fc.assert(fc.property(fc.array(command, { maxLength: 80 }), (commands) => {
    const fsm = new Fsm();
    const apply = feeder(fsm);
    for (const c of commands) {
      apply(c);
      const all = fsm.inventory.all();
      const seenMacs = new Set<string>();
      const seenIps = new Set<number>();
      for (const n of all) {
        if (seenMacs.has(n.mac)) throw new Error(`two nodes share MAC ${n.mac}`);
        seenMacs.add(n.mac);
        if (n.ip !== undefined) {
          if (seenIps.has(n.ip)) throw new Error(`two nodes share IP ${n.ip}`);
          seenIps.add(n.ip);
        }
        if (fsm.inventory.byMac(n.mac) !== n || fsm.inventory.byName(n.name) !== n) throw new Error(`index out of step for ${n.name}`);
        if (n.ip !== undefined && fsm.inventory.byIp(n.ip) !== n) throw new Error(`IP index out of step for ${n.name}`);
        if (fsm.inventory.pendingByMac(n.mac) !== undefined) throw new Error(`known MAC ${n.mac} is pending`);
      }
      for (const m of macs) if (fsm.inventory.byMac(m) !== undefined && !seenMacs.has(m)) throw new Error(`stale MAC index ${m}`);
      for (const i of ips) if (fsm.inventory.byIp(i) !== undefined && !seenIps.has(i)) throw new Error(`stale IP index ${i}`);
    }
  }), { seed, numRuns: 400 });
  t.pass(`seed ${seed}`);
});

t.test('property: snapshot/restore keeps the hash, and the restored replica stays in step', async (t) => {
  const seed = seedFromEnv(12);
  fc.assert(fc.property(fc.array(command, { maxLength: 60 }), fc.array(command, { maxLength: 30 }), (head, tail) => {
    const fsm = new Fsm();
    const apply = feeder(fsm);
    for (const c of head) apply(c);
    const copy = new Fsm();
    copy.restore(JSON.parse(JSON.stringify(fsm.snapshot())));
    if (copy.hash() !== fsm.hash()) throw new Error('hash changed by snapshot/restore');
    let index = fsm.appliedIndex;
    for (const c of tail) {
      const at = T0 + 1_000_000 + index * 1000;
      fsm.apply(++index, { at, command: c });
      copy.apply(index, { at, command: c });
    }
    if (copy.hash() !== fsm.hash()) throw new Error('replicas diverged after the restore');
  }), { seed, numRuns: 300 });
  t.pass(`seed ${seed}`);
});

t.test('a restored snapshot gets the checks apply() makes: a hostile name or field cannot reach DNS, boot scripts or a power command', async (t) => {
  const good = { name: 'n1', mac: M1, ip: IP1, profile: 'rpi4', group: 'rack1', addedAt: T0, changedAt: T0 };
  const hostile = [
    { name: '-rf', mac: M2, addedAt: T0, changedAt: T0 },
    { name: 'a;reboot', mac: '52:54:00:00:00:03', addedAt: T0, changedAt: T0 },
    { name: 'x$(id)', mac: '52:54:00:00:00:04', addedAt: T0, changedAt: T0 },
    { name: 'n5', mac: 'not a mac', addedAt: T0, changedAt: T0 },
    { name: 'n6', mac: '52:54:00:00:00:06', group: '--help', profile: 'a b', addedAt: T0, changedAt: T0 },
    { name: 'n7', mac: M1, addedAt: T0, changedAt: T0 }, // n1's MAC again
  ];
  const inv = new Inventory();
  inv.restore({ nodes: [good, ...hostile], pending: [{ mac: 'zz', firstSeen: T0, lastSeen: T0, count: 1 }], seeded: ['n1', '-x'] });
  t.same(inv.all().map((n) => n.name), ['n1', 'n6'], 'nodes with a bad name or MAC, or a MAC taken, are dropped');
  t.same(inv.byName('n6'), { name: 'n6', mac: '52:54:00:00:00:06', addedAt: T0, changedAt: T0 }, 'a bad group or profile is left out');
  t.same(inv.byName('n1'), good);
  t.same(inv.snapshot().pending, []);
  t.same(inv.snapshot().seeded, ['n1']);
});
