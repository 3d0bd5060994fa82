// The boot timeline's bounds, through Fsm.apply as every replica runs it: malformed events dropped,
// details cut and made printable, one kind cannot push the others out, the number of MACs is
// capped with inventory nodes kept (the same MAC dropped on a restored replica); and the proposers'
// limiter: per MAC per window, per second overall, a bounded table.
import t from 'tap';
import fc from 'fast-check';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { BOOT_DETAIL_MAX, BOOT_EVENTS_KEPT, BOOT_EVENTS_PER_KIND, BOOT_MACS_MAX, BootEventLimiter } from './boot-events.js';
import { seedFromEnv } from '../test/support/seeded.js';

const T0 = Date.UTC(2026, 11, 2, 7, 0);
const A = '52:54:00:00:00:0a';
const mac = (i: number): string => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

function feeder(fsm: Fsm): (command: Command, at: number) => void {
  let index = 0;
  return (command, at) => fsm.apply(++index, { at, command });
}

t.test('malformed events are dropped; details are cut and printable', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.boot', mac: 'AA:BB', event: 'tftp' }, T0);
  apply({ type: 'node.boot', mac: '52:54:00:00:00:0A', event: 'tftp' }, T0);
  apply({ type: 'node.boot', mac: A, event: 'x'.repeat(33) }, T0);
  apply({ type: 'node.boot', mac: A, event: 'tftp\n' }, T0);
  apply({ type: 'node.boot', mac: A, event: 7 } as unknown as Command, T0);
  t.equal([...fsm.nodes()].length, 0, 'no timeline from a malformed MAC or event name');
  apply({ type: 'node.boot', mac: A, event: 'tftp', detail: `boot.scr\u001b[2J${'y'.repeat(1000)}` }, T0);
  const [e] = fsm.bootEvents(A);
  t.equal(e?.detail?.length, BOOT_DETAIL_MAX);
  t.match(e?.detail, /^boot\.scr\?\[2Jy+$/, 'a control character became "?"');
});

t.test('one kind of event cannot push a node\'s other steps out of its timeline', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.boot', mac: A, event: 'dhcp.firmware', detail: 'ip 10.0.0.21' }, T0);
  for (let i = 0; i < 1000; i++) apply({ type: 'node.boot', mac: A, event: 'tftp', detail: `f${i}` }, T0 + 1 + i);
  apply({ type: 'node.boot', mac: A, event: 'dhcp.os' }, T0 + 2000);
  const events = fsm.bootEvents(A);
  t.equal(events[0]?.event, 'dhcp.firmware', 'the firmware DHCP is still there after 1000 file fetches');
  t.equal(events.filter((e) => e.event === 'tftp').length, BOOT_EVENTS_PER_KIND);
  t.same(events.filter((e) => e.event === 'tftp').map((e) => e.detail), Array.from({ length: BOOT_EVENTS_PER_KIND }, (_, i) => `f${1000 - BOOT_EVENTS_PER_KIND + i}`), 'the newest of a kind are kept');
  t.equal(events.at(-1)?.event, 'dhcp.os');
  for (let k = 0; k < 100; k++) apply({ type: 'node.boot', mac: A, event: `kind${k}` }, T0 + 3000 + k);
  t.equal(fsm.bootEvents(A).length, BOOT_EVENTS_KEPT, 'many kinds: the total bound holds');
});

t.test('timelines are bounded in number; inventory nodes are kept; replicas drop the same MAC', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.add', name: 'n1', mac: A }, T0);
  apply({ type: 'node.boot', mac: A, event: 'dhcp.firmware' }, T0);
  for (let i = 0; i < BOOT_MACS_MAX + 50; i++) apply({ type: 'node.boot', mac: mac(i), event: 'tftp' }, T0 + 1 + i);
  t.equal([...fsm.nodes()].length, BOOT_MACS_MAX);
  t.equal(fsm.bootEvents(A).length, 1, 'the inventory node\'s timeline stays, though its event is the oldest');
  t.equal(fsm.bootEvents(mac(50)).length, 0, 'the oldest unknown MACs went');
  t.equal(fsm.bootEvents(mac(51)).length, 1);
  const copy = new Fsm();
  copy.restore(fsm.snapshot());
  const more: Command = { type: 'node.boot', mac: mac(999_999), event: 'http' };
  fsm.apply(fsm.appliedIndex + 1, { at: T0 + 10_000_000, command: more });
  copy.apply(copy.appliedIndex + 1, { at: T0 + 10_000_000, command: more });
  t.equal(copy.hash(), fsm.hash(), 'a restored replica evicts the same MAC');
});

t.test('property: whatever node.boot entries arrive, every timeline stays within its bounds', async (t) => {
  const entry = fc.record({
    mac: fc.constantFrom(A, mac(1), mac(2), 'zz', ''),
    event: fc.constantFrom('dhcp.firmware', 'dhcp.os', 'tftp', 'http', 'rsync', 'verified', 'x', 'BAD', ''),
    detail: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
  });
  fc.assert(fc.property(fc.array(entry, { maxLength: 300 }), (entries) => {
    const fsm = new Fsm();
    const apply = feeder(fsm);
    entries.forEach((e, i) => apply({ type: 'node.boot', ...e } as Command, T0 + i));
    for (const [, events] of fsm.nodes()) {
      if (events.length > BOOT_EVENTS_KEPT) return false;
      const perKind = new Map<string, number>();
      for (const e of events) perKind.set(e.event, (perKind.get(e.event) ?? 0) + 1);
      if ([...perKind.values()].some((n) => n > BOOT_EVENTS_PER_KIND)) return false;
      if (events.some((e) => (e.detail ?? '').length > BOOT_DETAIL_MAX || /[^\x20-\x7e]/.test(e.detail ?? ''))) return false;
      if (events.some((e, i) => i > 0 && e.at < events[i - 1]!.at)) return false;
    }
    return true;
  }), { seed: seedFromEnv(71), numRuns: 300 });
});

t.test('limiter: per MAC per window, per second overall, a bounded table', async (t) => {
  const l = new BootEventLimiter({ intervalMs: 60_000, perMac: 3, perSecond: 5, max: 4 });
  t.same([1, 2, 3, 4].map((i) => l.allow(A, i)), [true, true, true, false], 'three per MAC per window');
  t.ok(l.allow(A, 60_001), 'a new window');
  t.ok(l.allow(mac(1), 60_002));
  t.ok(l.allow(mac(2), 60_003));
  t.ok(l.allow(mac(3), 60_004));
  t.notOk(l.allow(mac(4), 60_005), 'five in this second already');
  t.notOk(l.allow(mac(4), 61_100), 'the table is full inside the window');
  t.equal(l.size, 4);
  t.ok(l.allow(mac(4), 200_000), 'expired windows make room');
  t.ok(l.size <= 4);
  const flood = new BootEventLimiter();
  let allowed = 0;
  for (let i = 0; i < 100_000; i++) if (flood.allow(mac(i % 10), 1000 + i)) allowed++; // 100 s of a fetch per ms from 10 MACs
  t.ok(allowed <= 10 * 16 * 2, `a fetch loop from 10 MACs makes at most 16 events per MAC per minute (${allowed})`);
});
