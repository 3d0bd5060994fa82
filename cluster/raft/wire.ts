import { createHmac, timingSafeEqual } from 'node:crypto';
import { decoded, failed, type Decoded } from '../../lib/result.js';
import type { Entry, Message, MessageType, Snapshot } from './types.js';

// Raft on the wire: length-prefixed, versioned frames, each carrying a MAC. The codec is pure: it
// never throws on hostile bytes and returns Decoded<T> naming the offset of the first problem.
//
//   frame   = len u32 (of everything after it) | version u8 | kind u8 | seq u64 | payload | mac[32]
//   mac     = HMAC-SHA256(session key, version | kind | seq | payload)
//   kinds   = 1 hello  (cluster id, member id, nonce: before keys exist, MAC over the cluster key)
//             2 proof  (HMAC of both nonces: proves the peer holds the cluster key)
//             3 raft   (one Raft message; dialler -> listener)
//             4 status (a member report, cluster/member-status.ts; listener -> dialler only)
//             5 ping   (empty: "this link is alive"; both ways, only to a peer that offered it)
//
// Features: a hello frame's seq (always 0 before) carries the sender's feature bits; members from
// before them send 0 and ignore the field, and the hello's MAC covers it. FEATURE_PING: this
// member sends pings on an idle link and reads them; both ends must offer it before either sends
// one or closes the link for silence (cluster/raft/link-watch.ts).
//
// A frame's seq must be exactly one more than the last one on that connection and direction: a
// replayed, dropped or reordered frame ends the connection. Status frames flow only back to the
// dialler, because a dialler of any version reads nothing after the handshake (an older one drops
// those bytes unread), while an older listener would end the connection on an unknown kind.

export const WIRE_VERSION = 1;
export const MAC_BYTES = 32;
export const FRAME_HEAD = 4 + 1 + 1 + 8;
export const FRAME_MAX = 64 * 1024 * 1024;
export const FrameKind = { hello: 1, proof: 2, raft: 3, status: 4, ping: 5 } as const;
/** Feature bits in the seq of a hello frame. */
export const Feature = { ping: 1 } as const;
export const FEATURES = Feature.ping;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const TYPES: readonly MessageType[] = [
  'prevote', 'prevote-resp', 'vote', 'vote-resp', 'append', 'append-resp', 'heartbeat', 'heartbeat-resp', 'snapshot', 'snapshot-resp', 'timeout-now',
];
const ID_MAX = 63;
const ENTRIES_MAX = 1 << 20;

// ---- a small growable writer (frames can be megabytes; lib/wire-writer is for datagrams) -------

class Out {
  buf = Buffer.allocUnsafe(256);
  at = 0;
  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.at);
    this.buf = b;
  }
  u8(v: number): void { this.ensure(1); this.buf[this.at++] = v & 0xff; }
  u32(v: number): void { this.ensure(4); this.buf.writeUInt32BE(v >>> 0, this.at); this.at += 4; }
  u64(v: number): void { this.ensure(8); this.buf.writeUInt32BE(Math.floor(v / 2 ** 32) >>> 0, this.at); this.buf.writeUInt32BE(v >>> 0, this.at + 4); this.at += 8; }
  bytes(b: Uint8Array): void { this.u32(b.length); this.ensure(b.length); this.buf.set(b, this.at); this.at += b.length; }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u8(b.length); this.ensure(b.length); this.buf.set(b, this.at); this.at += b.length; }
}

class In {
  at: number;
  bad = false;
  constructor(readonly b: Uint8Array, at = 0) { this.at = at; }
  #need(n: number): boolean {
    if (this.bad || n < 0 || this.at + n > this.b.length) { this.bad = true; return false; }
    return true;
  }
  u8(): number { if (!this.#need(1)) return 0; return this.b[this.at++]!; }
  u32(): number { if (!this.#need(4)) return 0; const v = ((this.b[this.at]! << 24) | (this.b[this.at + 1]! << 16) | (this.b[this.at + 2]! << 8) | this.b[this.at + 3]!) >>> 0; this.at += 4; return v; }
  u64(): number { const hi = this.u32(); const lo = this.u32(); return hi * 2 ** 32 + lo; }
  bytes(max: number): Uint8Array { const n = this.u32(); if (n > max || !this.#need(n)) { this.bad = true; return new Uint8Array(0); } const v = this.b.slice(this.at, this.at + n); this.at += n; return v; }
  str(): string { const n = this.u8(); if (n > ID_MAX || !this.#need(n)) { this.bad = true; return ''; } const v = Buffer.from(this.b.subarray(this.at, this.at + n)).toString('utf8'); this.at += n; return v; }
}

// ---- Raft messages -------------------------------------------------------------------------------

export function encodeMessage(m: Message): Uint8Array {
  const o = new Out();
  writeMessage(o, m);
  return o.buf.subarray(0, o.at);
}

function writeMessage(o: Out, m: Message): void {
  o.u8(TYPES.indexOf(m.type));
  o.str(m.from);
  o.str(m.to);
  o.u64(m.term);
  o.u64(m.logTerm);
  o.u64(m.index);
  o.u64(m.commit);
  o.u64(m.hint);
  o.u64(Math.max(0, m.context));
  o.u8((m.reject ? 1 : 0) | (m.done === true ? 2 : 0) | (m.snapshot ? 4 : 0));
  o.u64(m.offset ?? 0);
  o.u32(m.entries.length);
  for (const e of m.entries) {
    o.u64(e.term);
    o.u64(e.index);
    o.u8(e.type);
    o.bytes(e.data);
  }
  if (m.snapshot) {
    o.bytes(Buffer.from(JSON.stringify(m.snapshot.meta)));
    o.bytes(m.snapshot.data);
  }
}

export function decodeMessage(bytes: Uint8Array): Decoded<Message> {
  const r = new In(bytes);
  const code = r.u8();
  const type = TYPES[code];
  if (type === undefined) return failed('bad-type', 0, `message type ${code}`);
  const from = r.str();
  const to = r.str();
  const term = r.u64(), logTerm = r.u64(), index = r.u64(), commit = r.u64(), hint = r.u64(), context = r.u64();
  const flags = r.u8();
  const offset = r.u64();
  const count = r.u32();
  if (r.bad) return failed('truncated', r.at, 'message header');
  if (count > ENTRIES_MAX || count * 21 > bytes.length - r.at) return failed('bad-count', r.at, `${count} entries`);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const eTerm = r.u64(), eIndex = r.u64(), eType = r.u8();
    const data = r.bytes(FRAME_MAX);
    if (r.bad) return failed('truncated', r.at, `entry ${i}`);
    if (eType !== 0 && eType !== 1) return failed('bad-entry-type', r.at, `entry type ${eType}`);
    entries.push({ term: eTerm, index: eIndex, type: eType, data });
  }
  const m: Message = { type, from, to, term, logTerm, index, commit, entries, reject: (flags & 1) !== 0, hint, context };
  if ((flags & 2) !== 0) m.done = true;
  if (offset !== 0 || type === 'snapshot' || type === 'snapshot-resp') m.offset = offset;
  if ((flags & 4) !== 0) {
    const metaBytes = r.bytes(1 << 20);
    const data = r.bytes(FRAME_MAX);
    if (r.bad) return failed('truncated', r.at, 'snapshot');
    const meta = parseMeta(metaBytes);
    if (!meta) return failed('bad-snapshot-meta', r.at, 'snapshot metadata');
    m.snapshot = { meta, data };
  }
  if (r.at !== bytes.length) return failed('trailing-bytes', r.at);
  if (from === '' || to === '') return failed('bad-id', 1, 'empty member id');
  return decoded(m);
}

function parseMeta(bytes: Uint8Array): Snapshot['meta'] | undefined {
  try {
    const o = JSON.parse(Buffer.from(bytes).toString('utf8')) as Snapshot['meta'];
    const ids = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (!Number.isSafeInteger(o.index) || !Number.isSafeInteger(o.term) || typeof o.conf !== 'object' || o.conf === null) return undefined;
    if (!ids(o.conf.voters) || !ids(o.conf.learners) || !ids(o.conf.witnesses)) return undefined;
    return { index: o.index, term: o.term, conf: { voters: o.conf.voters, learners: o.conf.learners, witnesses: o.conf.witnesses } };
  } catch {
    return undefined;
  }
}

// ---- handshake payloads --------------------------------------------------------------------------

export interface Hello { clusterId: string; member: string; nonce: Uint8Array }

export function encodeHello(h: Hello): Uint8Array {
  const o = new Out();
  o.str(h.clusterId);
  o.str(h.member);
  o.bytes(h.nonce);
  return o.buf.subarray(0, o.at);
}

export function decodeHello(bytes: Uint8Array): Decoded<Hello> {
  const r = new In(bytes);
  const clusterId = r.str();
  const member = r.str();
  const nonce = r.bytes(64);
  if (r.bad || r.at !== bytes.length) return failed('bad-hello', r.at);
  if (nonce.length < 16) return failed('short-nonce', r.at);
  return decoded({ clusterId, member, nonce });
}

/** Proof that the sender holds the cluster key, bound to both nonces and both names. */
export function proof(key: Uint8Array, clusterId: string, from: string, to: string, fromNonce: Uint8Array, toNonce: Uint8Array): Uint8Array {
  return createHmac('sha256', key).update('lanha-raft-proof\u0000').update(clusterId).update('\u0000').update(from).update('\u0000').update(to).update('\u0000')
    .update(fromNonce).update(toNonce).digest();
}

/** The per-direction frame key: derived from the cluster key and both nonces of this connection. */
export function sessionKey(key: Uint8Array, clusterId: string, from: string, fromNonce: Uint8Array, toNonce: Uint8Array): Uint8Array {
  return createHmac('sha256', key).update('lanha-raft-session\u0000').update(clusterId).update('\u0000').update(from).update('\u0000').update(fromNonce).update(toNonce).digest();
}

export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---- frames --------------------------------------------------------------------------------------

export function encodeFrame(kind: FrameKind, seq: number, payload: Uint8Array, macKey: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEAD + payload.length + MAC_BYTES);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = WIRE_VERSION;
  out[5] = kind;
  out.writeUInt32BE(Math.floor(seq / 2 ** 32) >>> 0, 6);
  out.writeUInt32BE(seq >>> 0, 10);
  out.set(payload, FRAME_HEAD);
  const mac = createHmac('sha256', macKey).update(out.subarray(4, FRAME_HEAD + payload.length)).digest();
  mac.copy(out, FRAME_HEAD + payload.length);
  return out;
}

export interface Frame { kind: FrameKind; seq: number; payload: Uint8Array; body: Uint8Array; mac: Uint8Array }

/**
 * Splits whole frames off the front of `buf`. Returns the frames and how many bytes they used; an
 * error (bad length or version) means the stream is garbage and the connection must close.
 */
export function splitFrames(buf: Uint8Array, maxFrame = FRAME_MAX): { frames: Frame[]; used: number; error?: { offset: number; problem: string } } {
  const frames: Frame[] = [];
  let at = 0;
  while (buf.length - at >= 4) {
    const len = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
    if (len < FRAME_HEAD - 4 + MAC_BYTES || len > maxFrame) return { frames, used: at, error: { offset: at, problem: `frame length ${len} out of range` } };
    if (buf.length - at - 4 < len) break;
    const version = buf[at + 4]!;
    if (version !== WIRE_VERSION) return { frames, used: at, error: { offset: at + 4, problem: `wire version ${version}, this member speaks ${WIRE_VERSION}` } };
    const kind = buf[at + 5]!;
    if (kind < FrameKind.hello || kind > FrameKind.ping) return { frames, used: at, error: { offset: at + 5, problem: `frame kind ${kind}` } };
    const seq = (((buf[at + 6]! << 24) | (buf[at + 7]! << 16) | (buf[at + 8]! << 8) | buf[at + 9]!) >>> 0) * 2 ** 32
      + ((((buf[at + 10]! << 24) | (buf[at + 11]! << 16) | (buf[at + 12]! << 8) | buf[at + 13]!) >>> 0));
    const end = at + 4 + len;
    frames.push({ kind: kind as FrameKind, seq, payload: buf.subarray(at + FRAME_HEAD, end - MAC_BYTES), body: buf.subarray(at + 4, end - MAC_BYTES), mac: buf.subarray(end - MAC_BYTES, end) });
    at = end;
  }
  return { frames, used: at };
}

export function frameMacOk(frame: Frame, macKey: Uint8Array): boolean {
  return macEqual(createHmac('sha256', macKey).update(frame.body).digest(), frame.mac);
}
