// The compute-node view behind `lanctl nodes`: reservations, leases and boot events joined per MAC.
import t from 'tap';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { nodeDetail, nodeRows, nodeTimeline } from './nodes-view.js';

const T0 = Date.UTC(2026, 10, 23, 9, 0);
const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';

t.test('nodes: joined per MAC, most recently active first, reserved-but-never-seen last', async (t) => {
  const fsm = new Fsm();
  let index = 0;
  const apply = (command: Command, at: number): void => fsm.apply(++index, { at, command });
  apply({ type: 'lease.grant', ip: 0x0a000064, mac: A, hostname: 'n1', subnet: '10.0.0.0/24', leaseMs: 3_600_000 }, T0);
  apply({ type: 'node.boot', mac: A, event: 'tftp', detail: 'pxelinux.0' }, T0 + 1000);
  apply({ type: 'node.boot', mac: A, event: 'tftp', detail: 'vmlinuz' }, T0 + 3000);
  apply({ type: 'node.boot', mac: C, event: 'tftp', detail: 'bootcode.bin' }, T0 + 2000);
  const reservations = [{ mac: A, ip: 0x0a000064, hostname: 'rack1' }, { mac: B, ip: 0x0a000065, hostname: 'rack2' }, { ip: 0x0a000066 }];
  const now = T0 + 10_000;
  const rows = nodeRows(fsm, reservations, now);
  t.same(rows.map((r) => r.mac), [A, C, B], 'A (7 s ago), C (8 s ago), then B never seen; a reservation without a MAC is no node');
  t.match(rows[0], { ip: '10.0.0.100', hostname: 'rack1', reserved: true, lease: 'bound', leaseExpiresInS: 3590, last: { event: 'tftp', detail: 'vmlinuz' }, lastAgoS: 7, bootEvents: 2 });
  t.match(rows[1], { ip: null, hostname: null, reserved: false, lease: 'none', last: { detail: 'bootcode.bin' }, bootEvents: 1 });
  t.match(rows[2], { ip: '10.0.0.101', hostname: 'rack2', lease: 'none', last: null, lastAgoS: null, bootEvents: 0 });
  t.same(nodeDetail(fsm, reservations, A, now)!.events.map((e) => `${e.event} ${e.detail}`), ['dhcp lease 10.0.0.100', 'tftp pxelinux.0', 'tftp vmlinuz'], 'events oldest first');
  t.equal(nodeDetail(fsm, reservations, '52:54:00:00:00:ff', now), null, 'unknown MAC');
  t.equal(nodeRows(fsm, reservations, T0 + 3_600_001)[0]!.lease, 'expired', 'a bound lease past its time shows as expired');
  apply({ type: 'lease.release', ip: 0x0a000064, mac: A }, T0 + 20_000);
  t.match(nodeDetail(fsm, reservations, A, T0 + 21_000), { lease: 'released', leaseExpiresInS: null });
});

t.test('inventory nodes: listed before they are seen, with name, profile (unknown flagged), group, generations; timeline with deltas', async (t) => {
  const fsm = new Fsm();
  let index = 0;
  const apply = (command: Command, at: number): void => fsm.apply(++index, { at, command });
  apply({ type: 'node.add', name: 'rack1', mac: A, ip: 0x0a000015, profile: 'pi4', group: 'row1' }, T0);
  apply({ type: 'node.add', name: 'rack2', mac: B, profile: 'nope' }, T0);
  apply({ type: 'node.generation', name: 'rack1', assigned: 'g2', running: 'g1' }, T0);
  apply({ type: 'node.boot', mac: A, event: 'dhcp.firmware', detail: 'ip 10.0.0.21, vendor U-Boot.armv8, arch 22' }, T0 + 1000);
  apply({ type: 'node.boot', mac: A, event: 'tftp', detail: 'boot.scr.uimg' }, T0 + 1250);
  apply({ type: 'node.boot', mac: A, event: 'dhcp.os', detail: 'ip 10.0.0.21' }, T0 + 9250);
  const rows = nodeRows(fsm, [], T0 + 10_000, new Set(['pi4']));
  t.match(rows[0], { name: 'rack1', mac: A, ip: '10.0.0.21', reserved: true, hostname: 'rack1', profile: 'pi4', profileUnknown: false, group: 'row1', assignedGeneration: 'g2', runningGeneration: 'g1', bootEvents: 3 });
  t.match(rows[1], { name: 'rack2', ip: null, reserved: false, profile: 'nope', profileUnknown: true, last: null });
  t.same(nodeTimeline(fsm.bootEvents(A)).map((s) => [s.step, s.deltaMs, s.sinceBootMs]), [['firmware DHCP', null, 0], ['file (TFTP)', 250, 250], ['OS DHCP', 8000, 8250]]);
  apply({ type: 'node.boot', mac: A, event: 'dhcp.firmware' }, T0 + 60_000);
  t.equal(nodeTimeline(fsm.bootEvents(A)).at(-1)!.sinceBootMs, 0, 'a firmware DHCP starts a new boot');
  // A power cycle starts the boot; the firmware DHCP after it is a step of that boot, not a new one.
  const cycled = nodeTimeline([
    { at: 1000, event: 'power', detail: 'cycle ok' },
    { at: 4500, event: 'dhcp.firmware', detail: 'U-Boot' },
    { at: 4800, event: 'tftp', detail: 'boot.scr.uimg 900 bytes' },
    { at: 9000, event: 'power', detail: 'off failed (exit 4)' },
    { at: 9500, event: 'dhcp.firmware', detail: 'U-Boot' },
  ]);
  t.same(cycled.map((s) => [s.step, s.sinceBootMs]), [['power', 0], ['firmware DHCP', 3500], ['file (TFTP)', 3800], ['power', 8000], ['firmware DHCP', 0]],
    'counted from the cycle; a failed switch starts nothing, the firmware DHCP after it does');
});
