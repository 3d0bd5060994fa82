import { HEADER_SIZE, OPCODE_QUERY, RCODE } from './wire.js';

// The header-only gate every datagram and TCP frame passes before anything else is decoded (the
// miekg/dns "MsgAcceptFunc" pattern): cheap checks that decide between no reply at all, a bare
// error reply, and going on to decode the question.

export type Admission =
  | { kind: 'accept' }
  /** No reply: the header cannot be read, or the message is itself a response. */
  | { kind: 'ignore'; reason: 'short-header' | 'is-response' }
  /** A header-only reply with this rcode. */
  | { kind: 'reject'; rcode: number; reason: 'opcode' | 'qdcount' };

export function admit(msg: Uint8Array): Admission {
  if (msg.length < HEADER_SIZE) return { kind: 'ignore', reason: 'short-header' };
  if ((msg[2]! & 0x80) !== 0) return { kind: 'ignore', reason: 'is-response' };
  if (((msg[2]! >> 3) & 0xf) !== OPCODE_QUERY) return { kind: 'reject', rcode: RCODE.NOTIMP, reason: 'opcode' };
  // RFC 9619: QDCOUNT must be 1 for a QUERY; checked before the body is decoded.
  if (msg[4] !== 0 || msg[5] !== 1) return { kind: 'reject', rcode: RCODE.FORMERR, reason: 'qdcount' };
  return { kind: 'accept' };
}

/** A header-only reply: the query's ID, opcode and RD, QR set, no records. */
export function headerReply(msg: Uint8Array, rcode: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  out[2] = 0x80 | (msg[2]! & 0x79); // QR + opcode + RD
  out[3] = rcode & 0xf;
  return out;
}
