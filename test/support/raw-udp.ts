import { execFileSync } from 'node:child_process';
import type { Test } from 'tap';
import { haveTools } from './tools.js';

// Datagrams from source port 0: no socket sends from it, so only a forged datagram comes from there,
// and no reply can go back. Written on a raw socket (IP_HDRINCL) by python3, which needs root.

/** An IPv4/UDP datagram from `src`:0 to `dst`:`port`, written on a raw socket. */
const RAW_SEND = `
import socket, struct, sys
src, dst, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
udp = struct.pack('!HHHH', 0, port, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(ip + udp, (dst, 0))
`;

/** True when this test can send from port 0 (root, python3); else says loudly why it skips. */
export function canSendFromPortZero(t: Test, what: string): boolean {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`\n*** SKIPPED ${what}: needs root (a raw socket sends from port 0)\n`);
    t.pass('SKIPPED: needs root');
    return false;
  }
  return haveTools(t, ['python3'], what);
}

/** Sends `payload` from `src`:0 to `dst`:`port`. */
export function sendFromPortZero(src: string, dst: string, port: number, payload: Uint8Array): void {
  execFileSync('python3', ['-c', RAW_SEND, src, dst, String(port), Buffer.from(payload).toString('hex')]);
}
