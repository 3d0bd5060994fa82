import { formatIpv4, type Ipv4 } from '../../lib/ipv4.js';
import type { Command } from '../../cluster/commands.js';
import { VENDOR_CLASS_MAX } from '../../cluster/inventory.js';
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
export class SeenLimiter {
  #last = new Map<string, number>();
  #second = { start: -Infinity, count: 0 };
  readonly intervalMs: number;
  readonly max: number;
  readonly perSecond: number;

  constructor(options: { intervalMs?: number; max?: number; perSecond?: number } = {}) {
    this.intervalMs = options.intervalMs ?? 60_000;
    this.max = options.max ?? 4096;
    this.perSecond = options.perSecond ?? 10;
  }

  allow(mac: string, nowMs: number): boolean {
    const last = this.#last.get(mac);
    if (last !== undefined && nowMs - last < this.intervalMs) return false;
    if (nowMs - this.#second.start >= 1000) this.#second = { start: nowMs, count: 0 };
    if (this.#second.count >= this.perSecond) return false;
    if (last === undefined && this.#last.size >= this.max) {
      for (const [m, at] of this.#last) if (nowMs - at >= this.intervalMs) this.#last.delete(m);
      if (this.#last.size >= this.max) return false;
    }
    this.#second.count++;
    this.#last.set(mac, nowMs);
    return true;
  }

  get size(): number { return this.#last.size; }
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
