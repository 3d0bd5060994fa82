// Boot timeline events held by a member that is not the leader: sent until their entry applies,
// proposed once per leader, proposed again after a failed proposal, dropped after RELAY_HELD_MS,
// bounded; and what a member report may carry of them.
import t from 'tap';
import { BootEventRelay, RELAY_HELD_MAX, RELAY_HELD_MS, decodeRelayed } from './boot-relay.js';
import { decodeReport, encodeReport, type MemberReport } from './member-status.js';
import { BOOT_EVENT_EARLIEST_MS, bootEventTime } from './boot-events.js';
import { commandLevel, olderForm, proposable } from './apply-level.js';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';

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

// A power switch run on a follower reaches the log through the leader a second or more later. Its
// timeline event used to carry the leader's log time: a cycle at 12:00:00.0 showed at 12:00:01.2,
// after the firmware DHCP it had caused. Now the event keeps the follower's own time of the switch.
t.test('a relayed event keeps the time it happened on its member, in time order', async (t) => {
  const happened = 1_800_000_000_000;
  const follower = new BootEventRelay('lan-b', 1);
  follower.hold({ ...cycle, at: happened } as unknown as typeof cycle, 0);
  const carried = decodeRelayed(JSON.parse(JSON.stringify(follower.outgoing(1000).events)));
  t.ok(Array.isArray(carried), 'what a member report carries decodes');
  const [command] = new BootEventRelay('lan-a', 2).toPropose(carried!);
  const fsm = new Fsm();
  // The node's firmware asked for an address 0.5 s after the cycle; the leader recorded that first.
  fsm.apply(1, { at: happened + 500, command: { type: 'node.boot', mac: cycle.mac, event: 'dhcp.firmware' } });
  fsm.apply(2, { at: happened + 1200, command: command! });
  t.same(fsm.bootEvents(cycle.mac).map((e) => [e.event, e.at - happened]), [['power', 0], ['dhcp.firmware', 500]], 'the switch at its own time, before the DHCP it caused');
  const replica = new Fsm();
  replica.apply(1, { at: happened + 500, command: { type: 'node.boot', mac: cycle.mac, event: 'dhcp.firmware' } });
  replica.apply(2, { at: happened + 1200, command: command! });
  t.equal(replica.hash(), fsm.hash(), 'every member records the same');
});

t.test('an event time is taken within its bounds: never after its log time, at most 11 minutes before', async (t) => {
  const logAt = 1_800_000_000_000;
  const boot = (at: unknown) => ({ ...cycle, at }) as unknown as Parameters<typeof bootEventTime>[0];
  t.equal(bootEventTime(boot(logAt - 2000), logAt), logAt - 2000);
  t.equal(bootEventTime(boot(logAt + 60_000), logAt), logAt, 'a member clock ahead: the log time');
  t.equal(bootEventTime(boot(logAt - 3_600_000), logAt), logAt - BOOT_EVENT_EARLIEST_MS, 'a member clock far behind: the bound');
  t.equal(bootEventTime(boot(Number.NaN), logAt), logAt);
  t.equal(bootEventTime(cycle, logAt), logAt, 'no time of its own: the log time');
  t.equal(decodeRelayed([{ id: 'lan-b-0-1', mac: cycle.mac, event: 'power', at: 'soon' }]), undefined, 'a time that is not a number is refused');
});

t.test('the event time is a level-3 field: proposed without it while a member is below', async (t) => {
  const timed = { ...cycle, at: 5 } as unknown as Command;
  t.equal(commandLevel(timed), 4, "its field (level 3) goes in envelope 2 (level 4)");
  t.equal(commandLevel(cycle), 1);
  t.same(olderForm(timed, 2), cycle);
  t.same(proposable(timed, undefined), timed, 'no check: as it is');
  t.same(proposable(timed, (c) => (commandLevel(c) > 2 ? 'a member is at level 2' : null)), cycle, 'refused with the field: sent without it');
  t.same(proposable(timed, () => null), timed);
});
