import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { errorMessage } from '../../lib/errors.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import { emptyMessage, encodeMessage, CLASS_IN } from '../dns/wire.js';
import { decodePacket, encodeError, encodeRequest } from '../tftp/wire.js';
import { GapWindow, type GapTrigger, type ProbeProtocol, type ProbeWindowResult } from './gap-window.js';

// The failover gap as a client sees it: while a failover runs, this LAN node sends small probes to
// the VIP from its own address (a DNS SOA question for a served zone, an NTP client request, a TFTP
// read of a file that does not exist: the ERROR reply is an answer) and notes each protocol's first
// answer (gap-window.ts). Nothing runs in steady state: a window opens only on a failover (the
// `lanctl failover` release on the old holder, or this node noticing its leader gone), one window at
// a time, at most one probe per protocol every 50-100 ms, closed after the first answer or 10 s.
// DHCP is not probed (see services/ops/README.md): it is not served on the VIP, a probe would need
// port 67, which this node's own DHCP server holds, and a DORA commits a lease per probe.

export interface GapProbeTargets {
  /** The VIP and the node address the probes leave from. */
  vip: number;
  from: number;
  dns?: { port: number; zone: string } | undefined;
  ntp?: { port: number } | undefined;
  tftp?: { port: number } | undefined;
}

export interface GapProberOptions {
  node: string;
  targets: GapProbeTargets;
  clock: Clock;
  log: Logger;
  onResult(result: ProbeWindowResult): void;
  /** How long a window stays open without every answer (default 10 s). */
  windowMs?: number;
  /** Milliseconds between probes per protocol. */
  intervalMs?: Partial<Record<ProbeProtocol, number>>;
}

/** The TFTP file asked for: no such file, so the server answers with an ERROR and sends no data. */
export const PROBE_FILE = 'lanha-failover-probe.invalid';
const INTERVAL_MS: Record<ProbeProtocol, number> = { dns: 50, ntp: 50, tftp: 100 };
const NTP_UNIX_OFFSET_S = 2_208_988_800;

interface Probe {
  protocol: ProbeProtocol;
  port: number;
  /** The next request's bytes, and whether a reply answers it. */
  request(): Uint8Array;
  answers(reply: Buffer): boolean;
}

function dnsProbe(port: number, zone: string): Probe {
  const id = randomInt(1, 0xffff);
  const q = emptyMessage(id);
  q.questions.push({ name: zone, type: 6, class: CLASS_IN });
  const bytes = encodeMessage(q).bytes;
  // Any reply with our id and the QR bit: the service answered, whatever the rcode.
  return { protocol: 'dns', port, request: () => bytes, answers: (m) => m.length >= 12 && m.readUInt16BE(0) === id && (m[2]! & 0x80) !== 0 };
}

function ntpProbe(port: number): Probe {
  // Replies to earlier probes count too (the first ones wait in the ARP queue while the VIP moves).
  const sent = new Set<string>();
  return {
    protocol: 'ntp', port,
    request: () => {
      const req = Buffer.alloc(48);
      req[0] = (4 << 3) | 3; // version 4, mode 3 (client)
      req.writeUInt32BE((randomInt(0, 0x7fffffff) + NTP_UNIX_OFFSET_S) >>> 0, 40);
      req.writeUInt32BE(randomInt(0, 0x7fffffff), 44);
      if (sent.size < 1024) sent.add(req.subarray(40, 48).toString('hex'));
      return req;
    },
    // A server reply (mode 4; a KoD too) echoes our transmit stamp as its origin (RFC 5905 §8).
    answers: (m) => m.length >= 48 && (m[0]! & 7) === 4 && sent.has(m.subarray(24, 32).toString('hex')),
  };
}

function tftpProbe(port: number): Probe {
  const rrq = encodeRequest('rrq', PROBE_FILE, 'octet');
  return { protocol: 'tftp', port, request: () => rrq, answers: (m) => decodePacket(m).ok };
}

/** Sends probes during one failover window at a time; reports each window's result. */
export class GapProber {
  #o: GapProberOptions;
  #window: GapWindow | null = null;
  #sockets: Socket[] = [];
  #timers: NodeJS.Timeout[] = [];
  #meta: { at: string; since: string } | null = null;

  constructor(options: GapProberOptions) {
    this.#o = options;
  }

  get running(): boolean { return this.#window !== null; }

  probes(): Probe[] {
    const t = this.#o.targets;
    return [
      ...(t.dns === undefined ? [] : [dnsProbe(t.dns.port, t.dns.zone)]),
      ...(t.ntp === undefined ? [] : [ntpProbe(t.ntp.port)]),
      ...(t.tftp === undefined ? [] : [tftpProbe(t.tftp.port)]),
    ];
  }

  /**
   * Opens a window whose gaps count from `startMono` (monotonic ms: the VIP release here, or the
   * last time this node heard the old leader). False when a window is already open or nothing to probe.
   */
  start(trigger: GapTrigger, startMono: number, since: string): boolean {
    if (this.#window !== null) return false;
    const probes = this.probes();
    if (probes.length === 0) return false;
    const now = this.#o.clock.monotonicMs();
    const window = new GapWindow(trigger, Math.min(startMono, now), now + (this.#o.windowMs ?? 10_000), probes.map((p) => p.protocol));
    this.#window = window;
    this.#meta = { at: new Date(this.#o.clock.wallMs()).toISOString(), since };
    for (const probe of probes) this.#run(window, probe);
    const deadline = setTimeout(() => this.#finish(window), Math.max(0, window.deadlineMs - now));
    deadline.unref();
    this.#timers.push(deadline);
    return true;
  }

  #run(window: GapWindow, probe: Probe): void {
    const { vip, from } = this.#o.targets;
    const host = formatIpv4(vip);
    const socket = createSocket('udp4');
    this.#sockets.push(socket);
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => { if (timer !== undefined) clearInterval(timer); timer = undefined; };
    socket.on('error', (error) => {
      stop();
      this.#o.log.warn({ event: 'failover.probe.failed', protocol: probe.protocol, err: errorMessage(error) }, `${probe.protocol} failover probe to ${host} failed`);
    });
    socket.on('message', (reply, rinfo) => {
      if (!probe.answers(reply)) return;
      if (probe.protocol === 'tftp' && reply.readUInt16BE(0) === 3) {
        // The file exists after all: end the transfer at once (RFC 1350: an ERROR ends it).
        socket.send(encodeError(0, 'failover probe done'), rinfo.port, rinfo.address);
      }
      if (window.answered(probe.protocol, this.#o.clock.monotonicMs())) stop();
      if (window.done(this.#o.clock.monotonicMs())) this.#finish(window);
    });
    const send = (): void => {
      if (window.isAnswered(probe.protocol) || this.#window !== window) { stop(); return; }
      window.sent(probe.protocol);
      socket.send(probe.request(), probe.port, host, () => undefined);
    };
    socket.bind({ address: formatIpv4(from), port: 0 }, () => {
      if (this.#window !== window) return;
      send();
      timer = setInterval(send, this.#o.intervalMs?.[probe.protocol] ?? INTERVAL_MS[probe.protocol]);
      timer.unref();
      this.#timers.push(timer);
    });
  }

  #finish(window: GapWindow): void {
    if (this.#window !== window) return;
    this.#window = null;
    this.#close();
    const meta = this.#meta!;
    const result = window.result({ at: meta.at, since: meta.since, from: this.#o.node, target: formatIpv4(this.#o.targets.vip) });
    this.#o.log.info({ event: 'failover.probe.done', trigger: result.trigger, gaps: Object.fromEntries(result.gaps.map((g) => [g.protocol, g.seconds])) },
      `failover probes to ${result.target}: ${result.gaps.map((g) => `${g.protocol} ${g.seconds === null ? 'no answer' : `${Math.round(g.seconds * 1000)} ms`}`).join(', ')}`);
    this.#o.onResult(result);
  }

  #close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers = [];
    for (const socket of this.#sockets) { try { socket.close(); } catch { /* already closed */ } }
    this.#sockets = [];
  }

  stop(): void {
    this.#window = null;
    this.#close();
  }
}
