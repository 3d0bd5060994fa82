// What DHCP records in the inventory: which clients look like netboot firmware, the node.seen rate
// limits, and the boot-timeline event of a node's new binding.
import t from 'tap';
import { SeenLimiter, bindingEvent, isNetbootFirmware, seenCommand } from './inventory-hooks.js';
import type { ClientRequest } from './request.js';

const base: ClientRequest = { type: 'discover', xid: 1, mac: '52:54:00:00:00:01', clientKey: 'mac:52:54:00:00:00:01', ciaddr: 0, giaddr: 0, broadcast: false, userClasses: [], parameterRequest: [] };

t.test('netboot firmware: PXE/U-Boot/iPXE vendor class, iPXE user class, or option 93', async (t) => {
  t.ok(isNetbootFirmware({ ...base, vendorClass: 'PXEClient:Arch:00007:UNDI:003016' }));
  t.ok(isNetbootFirmware({ ...base, vendorClass: 'U-Boot.armv8' }));
  t.ok(isNetbootFirmware({ ...base, vendorClass: 'iPXE' }));
  t.ok(isNetbootFirmware({ ...base, userClasses: ['iPXE'] }));
  t.ok(isNetbootFirmware({ ...base, arch: 0 }), 'arch 0 (x86 BIOS) counts');
  t.notOk(isNetbootFirmware({ ...base, vendorClass: 'udhcp 1.35.0' }));
  t.notOk(isNetbootFirmware({ ...base, vendorClass: 'MSFT 5.0' }));
  t.notOk(isNetbootFirmware(base));
});

t.test('seenCommand: unknown firmware on discover/request only; vendor class made printable and bounded', async (t) => {
  t.same(seenCommand({ ...base, arch: 22, vendorClass: 'U-Boot.armv8\u0001' }, false), { type: 'node.seen', mac: base.mac, arch: 22, vendorClass: 'U-Boot.armv8?' });
  t.equal(seenCommand({ ...base, arch: 22 }, true), null, 'known MAC');
  t.equal(seenCommand({ ...base, type: 'release', arch: 22 }, false), null, 'not a boot request');
  t.equal(seenCommand(base, false), null, 'no firmware signs');
  const long = seenCommand({ ...base, vendorClass: 'PXEClient' + 'x'.repeat(300) }, false);
  t.equal(long?.type === 'node.seen' ? long.vendorClass?.length : -1, 64);
});

t.test('SeenLimiter: once per MAC per interval, a global per-second cap, a bounded table', async (t) => {
  const l = new SeenLimiter({ intervalMs: 60_000, max: 3, perSecond: 2 });
  t.ok(l.allow('a', 0));
  t.notOk(l.allow('a', 59_999), 'same MAC within the minute');
  t.ok(l.allow('b', 10));
  t.notOk(l.allow('c', 20), 'third in one second');
  t.ok(l.allow('c', 1000));
  t.notOk(l.allow('d', 2000), 'table full of MACs seen within the minute');
  t.ok(l.allow('a', 60_000), 'a again after its minute');
  t.ok(l.allow('d', 61_000), 'room once entries are older than the interval');
  t.ok(l.size <= 3);
});

t.test('bindingEvent: firmware vs OS DHCP, renewals are not boot steps', async (t) => {
  t.same(bindingEvent({ ...base, type: 'request', vendorClass: 'U-Boot.armv8', arch: 22 }, 0x0a000015), { type: 'node.boot', mac: base.mac, event: 'dhcp.firmware', detail: 'ip 10.0.0.21, vendor U-Boot.armv8, arch 22' });
  t.same(bindingEvent({ ...base, type: 'request', vendorClass: 'udhcp 1.35.0' }, 0x0a000015), { type: 'node.boot', mac: base.mac, event: 'dhcp.os', detail: 'ip 10.0.0.21, vendor udhcp 1.35.0' });
  t.equal(bindingEvent({ ...base, type: 'request', ciaddr: 0x0a000015 }, 0x0a000015), null);
});
