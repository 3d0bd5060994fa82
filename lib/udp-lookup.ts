import type dgram from 'node:dgram';
import { dgramState } from './udp-reading.js';

// dgram resolves every destination through `lookup` (dns.lookup by default), which defers each
// send to a later tick even for an IP literal. A server that only ever replies to the literal
// address a datagram came from can answer the lookup at once, so the send happens in the same tick:
// cheaper, and (for NTP) no gap between the transmit timestamp and the packet leaving.
export function literalLookup(family: 4 | 6): (address: string, options: unknown, callback: (err: Error | null, address: string, family: number) => void) => void {
  return (address, _options, callback) => callback(null, address, family);
}

/**
 * The same for a socket made elsewhere: one a child process received over IPC is rebuilt by Node
 * with the default lookup (dns.lookup, a deferred callback per reply sent). Returns whether it
 * could (false: this Node's dgram has another shape; the socket keeps its lookup).
 */
export function answerLookupsAtOnce(socket: dgram.Socket): boolean {
  const handle = dgramState(socket)?.handle;
  if (handle == null || typeof handle.lookup !== 'function') return false;
  handle.lookup = (address, callback) => callback(null, address);
  return true;
}
