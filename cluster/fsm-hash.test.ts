// The replicated state's hash without holding the event loop: status() is asked twice a second by
// the daemon's sampler, once a second per member report and by the VIP's polls, and it hashed the
// whole state in one go at each ask after a change (40,000 leases: 250-500 ms at load 8-12, so the DHCP ACK's p99
// at 100 DORA/s was ~100 ms). Now it reports the hash when known (Fsm.hashSoon), and the hash is
// worked out in slices (Fsm.hashInSlices), equal to hash() byte for byte.
import t from 'tap';
import { Fsm } from './fsm.js';
import { sortInSlices, stringifyInSlices } from '../lib/slices.js';
import { RaftStateLog, encodeFsmSnapshot, encodeFsmSnapshotInSlices } from './raft-state-log.js';
import type { Command } from './commands.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { silentLogger } from '../lib/log.js';

const T0 = Date.UTC(2026, 0, 5, 10, 15);
const mac = (i: number): string => [2, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255, 1].map((b) => b.toString(16).padStart(2, '0')).join(':');
const grant = (i: number): Command => ({ type: 'lease.grant', ip: 0x0a630100 + i, mac: mac(i), subnet: '10.99.0.0/16', leaseMs: 3_600_000, clientId: `01${mac(i).replaceAll(':', '')}`, ...(i % 3 === 0 ? { hostname: `n${i}-\u00e9` } : {}) });

function filled(n: number): { fsm: Fsm; apply: (c: Command) => void } {
  const fsm = new Fsm();
  let index = 0;
  const apply = (command: Command): void => fsm.apply(++index, { at: T0 + index, command });
  // Granted out of address order: the hash sorts them.
  for (let i = n - 1; i >= 0; i--) apply(grant(i));
  apply({ type: 'dns.set', name: 'printer.lan', rrtype: 'A', ttl: 60, data: '10.99.0.9' });
  apply({ type: 'lease.release', ip: 0x0a630100 + 1, mac: mac(1) });
  return { fsm, apply };
}

t.test('hashInSlices() is hash() byte for byte: leases out of order, names with non-ASCII, records, a released lease', async (t) => {
  for (const n of [0, 1, 999, 1000, 1001, 4500]) {
    const { fsm } = filled(n);
    const copy = new Fsm();
    copy.restore(fsm.snapshot());
    t.equal(await copy.hashInSlices(), fsm.hash(), `${n} leases`);
  }
});

t.test('a change while the slices are worked out: null, nothing kept, and the next ask hashes the new state', async (t) => {
  const { fsm, apply } = filled(5000);
  const pending = fsm.hashInSlices();
  apply(grant(6000));
  t.equal(await pending, null, 'the state changed under it');
  t.equal(fsm.hashSoon(), null, 'no stale hash is reported');
  const fresh = new Fsm();
  fresh.restore(fsm.snapshot());
  t.equal(await fsm.hashInSlices(), fresh.hash(), 'the hash of the state as it is now');
});

t.test('hashSoon() works nothing out while the state changes, and has the hash once it is quiet', async (t) => {
  const { fsm, apply } = filled(3000);
  const expected = (() => { const c = new Fsm(); c.restore(fsm.snapshot()); return c.hash(); })();
  t.equal(fsm.hashSoon(), null, 'first ask after a change: not known');
  apply(grant(3001));
  t.equal(fsm.hashSoon(), null, 'changed again: still not known, and not started');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(fsm.hashSoon(), null, 'nothing was worked out meanwhile');
  const expectedNow = (() => { const c = new Fsm(); c.restore(fsm.snapshot()); return c.hash(); })();
  t.not(expectedNow, expected);
  // Quiet: this ask saw the same version as the one before, so it starts the slices.
  for (let i = 0; i < 200 && fsm.hashSoon() === null; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(fsm.hashSoon(), expectedNow, 'known once quiet');
});

t.test('the slices give the event loop back: 40,000 leases hashed in at least one loop turn per 1,000 leases, the one-go hash in none', async (t) => {
  const { fsm, apply } = filled(40_000);
  // A callback queued again at every turn of the loop stands for the DHCP traffic waiting behind
  // the hash: it runs between slices, never inside one. Counted, not timed (times go in bench:dhcp).
  let turns = 0;
  let counting = true;
  const turn = (): void => { turns++; if (counting) setImmediate(turn); };
  setImmediate(turn);
  let started = performance.now();
  fsm.hash();
  const oneGoMs = performance.now() - started;
  t.equal(turns, 0, 'the one-go hash (what status() did at each ask after a change) holds the loop throughout');
  apply(grant(40_001));
  started = performance.now();
  const hash = await fsm.hashInSlices();
  const slicedMs = performance.now() - started;
  counting = false;
  t.type(hash, 'string');
  t.equal(hash, fsm.hash(), 'the same hash as in one go');
  t.ok(turns >= 40, `the loop ran ${turns} turns while the sliced hash worked (40,001 leases, 1,000 per slice)`);
  t.comment(`one go ${oneGoMs.toFixed(1)} ms; in slices ${slicedMs.toFixed(1)} ms overall`);
});

t.test('the hash sorts the leases a slice at a time too: no sort over more than 1,000 leases, the loop turning between', async (t) => {
  const { fsm } = filled(40_000);
  // Every sort the hash makes, by length (the one-go sort of all leases held the loop ~25 ms at
  // 40,000 leases, 103 ms at load 10-20, before the first slice was made).
  const lengths: number[] = [];
  const sort = Array.prototype.sort;
  // eslint-disable-next-line no-extend-native
  Array.prototype.sort = function <T>(this: T[], compare?: (a: T, b: T) => number): T[] { lengths.push(this.length); return sort.call(this, compare) as T[]; };
  let turns = 0;
  let counting = true;
  const turn = (): void => { turns++; if (counting) setImmediate(turn); };
  try {
    setImmediate(turn);
    const hash = await fsm.hashInSlices();
    counting = false;
    t.equal(hash, fsm.hash(), 'the same hash as in one go');
  } finally {
    Array.prototype.sort = sort;
  }
  const leaseSorts = lengths.filter((n) => n > 10);
  t.ok(leaseSorts.length > 0, 'the leases were sorted');
  t.ok(Math.max(...leaseSorts) <= 1000, `the longest sort: ${Math.max(...leaseSorts)} items (40,000 leases)`);
  // ~40 turns among the runs, ~120 in the merges (2,000 moves a turn, 6 passes), ~40 among the
  // stringified slices (~200 in all); with the sort in one go only the last ~40.
  t.ok(turns >= 150, `the loop ran ${turns} turns while the hash sorted and stringified`);
});

t.test('the Raft snapshot sorts its leases in slices: equal to snapshot(), no sort over 1,000 leases', async (t) => {
  const { fsm, apply } = filled(4_500);
  const expected = fsm.snapshot();
  const lengths: number[] = [];
  const sort = Array.prototype.sort;
  // eslint-disable-next-line no-extend-native
  Array.prototype.sort = function <T>(this: T[], compare?: (a: T, b: T) => number): T[] { lengths.push(this.length); return sort.call(this, compare) as T[]; };
  let pending: Promise<unknown>;
  try {
    pending = fsm.snapshotInSlices();
    apply(grant(9_999)); // after the call: not in it
  } finally {
    Array.prototype.sort = sort;
  }
  t.same(await pending, expected, 'the state at the call');
  t.ok(Math.max(...lengths) <= 1000, `the longest sort made at the call: ${Math.max(...lengths)} items (4,500 leases)`);
});

t.test('sortInSlices sorts as Array.prototype.sort does (stable), turning the loop between slices; stop gives null', async (t) => {
  const random = seededRandom(27);
  for (const n of [0, 1, 999, 1000, 1001, 2000, 4500, 10_007]) {
    const items = Array.from({ length: n }, (_, i) => ({ key: Math.floor(random.float() * n / 3), i }));
    const expected = [...items].sort((a, b) => a.key - b.key);
    const got = await sortInSlices([...items], (a, b) => a.key - b.key);
    t.same(got, expected, `${n} items, with ties, in the same order`);
  }
  let asked = 0;
  t.equal(await sortInSlices(Array.from({ length: 5000 }, (_, i) => 5000 - i), (a, b) => a - b, () => ++asked > 3), null, 'stopped');
});

t.test('stringifyInSlices gives JSON.stringify\'s text, also when the marker cannot be used', async (t) => {
  const items = [{ a: 1 }, { b: '\u0000lanha-items-2\u0000' }];
  const doc = (x: unknown): unknown => ({ before: 'x', items: x, after: [1, 2] });
  let text = '';
  await stringifyInSlices(doc, items, (p) => { text += p; });
  t.equal(text, JSON.stringify(doc(items)));
  const clash = (x: unknown): unknown => ({ note: '\u0000lanha-items-2\u0000', items: x });
  text = '';
  await stringifyInSlices(clash, items, (p) => { text += p; });
  t.equal(text, JSON.stringify(clash(items)), 'a document holding the marker itself: stringified in one go');
  const { fsm } = filled(2500);
  const s = fsm.snapshot();
  t.ok(Buffer.from(await encodeFsmSnapshotInSlices(s)).equals(Buffer.from(encodeFsmSnapshot(s))), 'the snapshot encoding in slices is unchanged');
});

t.test('RaftStateLog.status() does not hash the state: known or null', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-fsm-hash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = await RaftStateLog.open({ id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger });
  t.teardown(() => log.close());
  for (let i = 0; i < 200 && !log.isLeader(); i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(log.isLeader());
  await log.propose(grant(1));
  t.equal(log.status()['stateHash'], null, 'after a change: null (before, the whole state was hashed here, on the event loop)');
  for (let i = 0; i < 200 && log.status()['stateHash'] === null; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(log.status()['stateHash'], log.fsm.hash(), 'once quiet: the hash');
});
