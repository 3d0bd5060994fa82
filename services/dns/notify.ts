import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from '../../lib/log.js';
import type { Random } from '../../lib/random.js';
import type { Counters } from '../../lib/counters.js';
import type { Upstream } from './config.js';
import { CLASS_IN, T, decodeMessage, emptyMessage, encodeMessage } from './wire.js';

// NOTIFY (RFC 1996): when the zones change, tell the configured secondaries, so they ask for the
// new serial at once instead of at their next SOA refresh. One NOTIFY per zone and secondary, from a
// kernel-chosen port with a random ID, sent again (2 s, doubling) until the secondary answers with
// the same ID, opcode NOTIFY and QR, or after 5 tries. A newer change replaces the pending one.

export const OPCODE_NOTIFY = 4;
const TRIES = 5;
const FIRST_RETRY_MS = 2000;

interface Pending { id: number; tries: number; timer: NodeJS.Timeout | null; message: Uint8Array }

export interface NotifierOptions {
  targets: readonly Upstream[];
  random: Random;
  log: Logger;
  counters: Counters;
  /** First resend after this long (then doubling); 2 s unless a test says otherwise. */
  retryMs?: number;
}

/** The NOTIFY message for `zone` (opcode 4, AA, the zone's SOA as the question). */
export function notifyMessage(id: number, zone: string): Uint8Array {
  const m = emptyMessage(id);
  m.opcode = OPCODE_NOTIFY;
  m.aa = true;
  m.questions = [{ name: zone, type: T.SOA, class: CLASS_IN }];
  return encodeMessage(m).bytes;
}

export class Notifier {
  readonly #o: NotifierOptions;
  #sockets = new Map<4 | 6, dgram.Socket>();
  /** "zone target:port" -> what is in flight. */
  #pending = new Map<string, Pending>();
  #closed = false;

  constructor(o: NotifierOptions) {
    this.#o = o;
  }

  get pending(): number { return this.#pending.size; }

  /** Tells every secondary that each of `zones` changed (to `serial`, for the log). */
  notify(zones: readonly string[], serial: number): void {
    if (this.#closed) return;
    for (const zone of zones) for (const target of this.#o.targets) this.#start(zone, target, serial);
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) if (p.timer !== null) clearTimeout(p.timer);
    this.#pending.clear();
    for (const s of this.#sockets.values()) s.close();
    this.#sockets.clear();
  }

  #socket(family: 4 | 6): dgram.Socket {
    let s = this.#sockets.get(family);
    if (s === undefined) {
      s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      s.on('error', (err) => this.#o.log.warn({ event: 'dns.notify_error', err }, `NOTIFY socket error: ${err.message}`));
      s.on('message', (msg, rinfo) => this.#onReply(msg, rinfo));
      this.#sockets.set(family, s);
    }
    return s;
  }

  #start(zone: string, target: Upstream, serial: number): void {
    const key = `${zone} ${target.address}:${target.port}`;
    const old = this.#pending.get(key);
    if (old?.timer) clearTimeout(old.timer);
    const id = this.#o.random.int(65536);
    const p: Pending = { id, tries: 0, timer: null, message: notifyMessage(id, zone) };
    this.#pending.set(key, p);
    const socket = this.#socket(isIPv6(target.address) ? 6 : 4);
    const send = (): void => {
      if (this.#pending.get(key) !== p) return;
      if (p.tries >= TRIES) {
        this.#pending.delete(key);
        this.#o.counters.inc('dns.notify.unanswered');
        this.#o.log.warn({ event: 'dns.notify_unanswered', zone, target: `${target.address}:${target.port}`, serial },
          `secondary ${target.address}:${target.port} did not answer NOTIFY for ${zone} (serial ${serial}) after ${TRIES} tries`);
        return;
      }
      p.tries++;
      this.#o.counters.inc('dns.notify.sent');
      socket.send(p.message, target.port, target.address);
      p.timer = setTimeout(send, (this.#o.retryMs ?? FIRST_RETRY_MS) * 2 ** (p.tries - 1));
    };
    send();
  }

  #onReply(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const d = decodeMessage(msg);
    if (!d.ok || !d.value.qr || d.value.opcode !== OPCODE_NOTIFY) return;
    const zone = d.value.questions[0]?.name.toLowerCase().replace(/\.$/, '');
    const key = `${zone} ${rinfo.address}:${rinfo.port}`;
    const p = this.#pending.get(key);
    if (p === undefined || p.id !== d.value.id) {
      this.#o.counters.inc('dns.notify.mismatched');
      return;
    }
    if (p.timer !== null) clearTimeout(p.timer);
    this.#pending.delete(key);
    this.#o.counters.inc('dns.notify.acked');
  }
}
