// The compute-node view behind `lanctl nodes`: reservations, leases and boot events joined per MAC.
import t from 'tap';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { nodeDetail, nodeRows } from './nodes-view.js';

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
