import { formatIpv4, type Ipv4 } from '../../lib/ipv4.js';
import type { Command } from '../../cluster/commands.js';
import { VENDOR_CLASS_MAX } from '../../cluster/inventory.js';
import { BootEventLimiter } from '../../cluster/boot-events.js';
import type { ClientRequest } from './request.js';

// What DHCP records in the compute-node inventory (cluster/inventory.ts): unknown MACs whose
// firmware asks to netboot go to the pending list (`node.seen`), and a known node's new bindings go
// to its boot timeline (`node.boot` dhcp.firmware / dhcp.os). Pure: the shell proposes what these
// return, leader only, without waiting (the reply never waits on them).

/** Netboot firmware: a PXE, U-Boot or iPXE vendor class, iPXE's user class, or a client arch (option 93). */
export function isNetbootFirmware(request: Pick<ClientRequest, 'vendorClass' | 'arch' | 'userClasses'>): boolean {
  if (request.arch !== undefined) return true;
  if (request.userClasses.includes('iPXE')) return true;
  const vendor = request.vendorClass ?? '';
  return /^(PXEClient|U-Boot|iPXE)/i.test(vendor);
}

/** Printable text of a client-sent string: no control characters, bounded. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, VENDOR_CLASS_MAX);
}

/**
 * At most one `node.seen` per MAC per interval and `perSecond` in all, in a bounded table: a DISCOVER
 * flood from random MACs with a PXE vendor class costs a few log entries a second, never one each.
 * Past `max` MACs inside the interval new ones are not recorded (the pending list is capped in apply).
 */
export class SeenLimiter extends BootEventLimiter {
  constructor(options: { intervalMs?: number; max?: number; perSecond?: number } = {}) {
    super({ intervalMs: options.intervalMs ?? 60_000, max: options.max ?? 4096, perSecond: options.perSecond ?? 10, perMac: 1 });
  }
}

/** The `node.seen` for an unknown MAC whose firmware asks to netboot, or null. */
export function seenCommand(request: ClientRequest, known: boolean): Command | null {
  if (known || (request.type !== 'discover' && request.type !== 'request') || !isNetbootFirmware(request)) return null;
  const command: Command = { type: 'node.seen', mac: request.mac };
  if (request.arch !== undefined) command.arch = request.arch;
  if (request.vendorClass !== undefined) command.vendorClass = printable(request.vendorClass);
  return command;
}

/**
 * The boot-timeline event of a new binding (not a renewal) of an inventory node: "dhcp.firmware" when
 * its firmware asked (vendor class, arch), else "dhcp.os".
 */
export function bindingEvent(request: ClientRequest, ip: Ipv4): Command | null {
  if (request.ciaddr !== 0) return null; // renewing or rebinding: not a boot step
  const firmware = isNetbootFirmware(request);
  const parts = [`ip ${formatIpv4(ip)}`];
  if (request.vendorClass !== undefined) parts.push(`vendor ${printable(request.vendorClass)}`);
  if (request.arch !== undefined) parts.push(`arch ${request.arch}`);
  return { type: 'node.boot', mac: request.mac, event: firmware ? 'dhcp.firmware' : 'dhcp.os', detail: parts.join(', ') };
}
