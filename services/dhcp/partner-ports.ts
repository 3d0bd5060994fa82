import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import type { PartnerPorts } from '../../cluster/degraded.js';

// What the partner's ports say (cluster/degraded.ts PartnerPorts), for degraded mode's look at a
// partner whose reports are silent while its address answers ARP: its machine is up, and either its
// lanha is down (nothing listens: the kernel resets a connect at once) or the cluster link failed
// while it runs (a cut drops the connect: no answer; a port that accepts: it runs). A paused lanha's
// kernel still accepts, so a reset means no process at all. Two ports must reset: the cluster port
// and the DNS port, so a firewall resetting the cluster port alone never passes for a dead lanha.
// With DNS over TCP off (`dns.tcp: false`) the second is a UDP port lanha serves (DNS, else NTP):
// a datagram to a port nothing is bound to is answered by the kernel with ICMP port unreachable,
// which a connected socket reads as ECONNREFUSED; a request answered, or nothing (a paused lanha's
// socket queues it, a cut link drops it), is not a reset. With no second port there is no knock.

/** One TCP connect: `refused` on a reset, `open` when accepted (closed again at once), `silent` on a timeout or any other error. */
export function knock(host: string, port: number, timeoutMs: number): Promise<PartnerPorts> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (r: PartnerPorts): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('silent'), timeoutMs);
    socket.once('connect', () => done('open'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'refused' : 'silent'));
  });
}

/**
 * One datagram to a UDP port: `refused` when the kernel there says nothing is bound (ICMP port
 * unreachable, read as ECONNREFUSED), `open` when anything answers, `silent` on a timeout or any
 * other error. The request should be one the service answers cheaply and harmlessly (udpKnock).
 */
export function knockUdp(host: string, port: number, payload: Uint8Array, timeoutMs: number): Promise<PartnerPorts> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    let settled = false;
    const done = (r: PartnerPorts): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { socket.close(); } catch { /* closed already */ }
      resolve(r);
    };
    const timer = setTimeout(() => done('silent'), timeoutMs);
    socket.on('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'refused' : 'silent'));
    socket.on('message', () => done('open'));
    socket.connect(port, host, () => socket.send(payload, (error) => { if (error) done('silent'); }));
  });
}

/** A port to knock on: TCP (a connect) or UDP (one datagram, `payload`). */
export type Knock = { proto: 'tcp'; port: number } | { proto: 'udp'; port: number; payload: Uint8Array };

/** A DNS header with opcode STATUS and no question: a DNS server answers NOTIMP at once and forwards nothing. */
export const DNS_STATUS_QUERY = Uint8Array.of(0x4c, 0x48, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
/** An NTP client request (LI 0, version 4, mode 3): an NTP server answers with its time. */
export const NTP_CLIENT_REQUEST = Uint8Array.from({ length: 48 }, (_, i) => (i === 0 ? 0x23 : 0));

/** How long a knock waits for an answer: a reset or an accept on a LAN comes in well under a millisecond. */
export const KNOCK_TIMEOUT_MS = 500;

/** The partner's ports together (a number: TCP): `refused` only when every one, two at least, reset; `open` when any answered; else `silent`. */
export async function partnerPorts(host: string, ports: readonly (number | Knock)[], timeoutMs = KNOCK_TIMEOUT_MS): Promise<PartnerPorts> {
  const answers = await Promise.all(ports.map((p) => (typeof p === 'number' || p.proto === 'tcp' ? knock(host, typeof p === 'number' ? p : p.port, timeoutMs) : knockUdp(host, p.port, p.payload, timeoutMs))));
  if (answers.length >= 2 && answers.every((a) => a === 'refused')) return 'refused';
  return answers.includes('open') ? 'open' : 'silent';
}
