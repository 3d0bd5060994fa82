// Boot timeline events held by a member that is not the leader: sent until their entry applies,
// proposed once per leader, proposed again after a failed proposal, dropped after RELAY_HELD_MS,
// bounded; and what a member report may carry of them.
import t from 'tap';
import { BootEventRelay, RELAY_HELD_MAX, RELAY_HELD_MS, decodeRelayed } from './boot-relay.js';
import { decodeReport, encodeReport, type MemberReport } from './member-status.js';

const cycle = { type: 'node.boot', mac: '52:54:00:00:01:01', event: 'power', detail: 'cycle ok' } as const;

t.test('a follower holds an event until the entry carrying it applies', async (t) => {
  const follower = new BootEventRelay('lan-b', 1700000000000);
  const id = follower.hold(cycle, 1000);
  t.match(id, /^lan-b-0-1700000000000$/);
  t.same(follower.outgoing(2000).events, [{ id, mac: cycle.mac, event: 'power', detail: 'cycle ok' }]);
  const leader = new BootEventRelay('lan-a', 1);
  const commands = leader.toPropose(follower.outgoing(3000).events);
  t.same(commands, [{ ...cycle, relay: id }], 'the leader proposes it with its id');
  t.same(leader.toPropose(follower.outgoing(4000).events), [], 'the next report carries it again: not proposed twice');
  leader.failed(id);
  t.same(leader.toPropose(follower.outgoing(5000).events).length, 1, 'a proposal that failed is made again');
  follower.applied({ ...cycle, relay: id });
  t.same(follower.outgoing(6000).events, [], 'once applied, it is no longer sent');
  t.equal(follower.size, 0);
  follower.applied(cycle); // an entry without a relay id changes nothing
});

t.test('an event no leader took is dropped after RELAY_HELD_MS; at most RELAY_HELD_MAX are held', async (t) => {
  const relay = new BootEventRelay('lan-b', 1);
  relay.hold(cycle, 0);
  t.equal(relay.outgoing(RELAY_HELD_MS).events.length, 1);
  const late = relay.outgoing(RELAY_HELD_MS + 1);
  t.same([late.events.length, late.expired.map((e) => e.detail)], [0, ['cycle ok']], 'returned apart, for the log line');
  for (let i = 0; i < RELAY_HELD_MAX + 5; i++) relay.hold({ ...cycle, detail: `n${i}` }, 10);
  const held = relay.outgoing(11).events;
  t.equal(held.length, RELAY_HELD_MAX);
  t.equal(held[0]!.detail, 'n5', 'the oldest go first');
});

t.test('member reports carry held events; malformed ones fail the report', async (t) => {
  const base: MemberReport = { node: 'lan-b', version: 'v', configHash: 'h', role: 'follower', leader: 'lan-a', term: 2, commitIndex: 5, appliedIndex: 5, lastIndex: 5, walFsyncP99Ms: null, bootFiles: null, sentWallMs: 1, echo: null };
  const events = [{ id: 'lan-b-0-17', mac: cycle.mac, event: 'power', detail: 'cycle ok' }];
  const r = decodeReport(encodeReport({ ...base, bootEvents: events }));
  t.ok(r.ok);
  if (r.ok) t.same(r.value.bootEvents, events);
  const old = decodeReport(encodeReport(base));
  t.ok(old.ok && old.value.bootEvents === undefined, 'a report without them (an older member) decodes');
  t.equal(decodeRelayed([{ ...events[0], mac: 'not a mac' }]), undefined);
  t.equal(decodeRelayed([{ ...events[0], id: '../x' }]), undefined);
  t.equal(decodeRelayed([{ ...events[0], detail: 'x'.repeat(201) }]), undefined);
  t.equal(decodeRelayed(Array.from({ length: RELAY_HELD_MAX + 1 }, () => events[0])), undefined);
  t.notOk(decodeReport(encodeReport({ ...base, bootEvents: [{ ...events[0]!, event: 'Bad Event' }] })).ok);
});
