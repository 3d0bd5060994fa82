import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { ipv4ToBytes, parseIpv4 } from './ipv4.js';

// Datagrams the kernel dropped for one bound UDP socket because its receive queue was full: the
// `drops` column of /proc/net/udp, which Linux keeps per socket. A server that
// cannot keep up sheds the excess there, at no cost to itself; this makes that shedding visible
// (a status counter) instead of silent. Node has no call for it (no SO_RXQ_OVFL), so the table is
// read when a status is asked for, never per datagram. The parse is pure; `readUdpDrops` is the shell.

/**
 * The drops of the socket bound to `address` (an IPv4 literal) and `port` in `table` (the text of
 * /proc/net/udp), or null when no such socket is listed (or `address` is not IPv4: IPv6 sockets are
 * not looked up). Addresses there are hex words in the machine's byte order (`littleEndian`).
 */
export function udpDropsFromTable(table: string, address: string, port: number, littleEndian: boolean): number | null {
  const want = `${procAddress(address, littleEndian)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  if (want.startsWith('?')) return null;
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
    if (fields.length < 13 || fields[1] !== want) continue;
    const drops = Number(fields[fields.length - 1]);
    return Number.isSafeInteger(drops) && drops >= 0 ? drops : null;
  }
  return null;
}

/** The kernel's spelling of an IPv4 address in /proc/net/udp; '?' for anything else. */
function procAddress(address: string, littleEndian: boolean): string {
  const ip = parseIpv4(address);
  if (ip === null) return '?';
  const b = ipv4ToBytes(ip);
  const word = littleEndian ? [b[3]!, b[2]!, b[1]!, b[0]!] : [...b];
  return word.map((x) => x.toString(16).toUpperCase().padStart(2, '0')).join('');
}

/** The kernel's drop count for the socket bound to `address`:`port`, or null (not Linux, not listed). */
export function readUdpDrops(address: string, port: number): number | null {
  try {
    if (parseIpv4(address) === null) return null;
    const table = readFileSync('/proc/net/udp', 'latin1');
    return udpDropsFromTable(table, address, port, endianness() === 'LE');
  } catch {
    return null;
  }
}
