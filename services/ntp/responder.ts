import {
  HEADER_LENGTH, LeapIndicator, NtpMode, STRATUM_KOD, TRANSMIT_OFFSET, ZERO_TIMESTAMP, asciiReferenceId,
  shortFromSeconds, writeHeader, writeTimestamp, type Leap, type NtpPacket, type NtpTimestamp,
} from './wire.js';

// The server-mode reply (RFC 5905 §9.2 fast_xmit): mode 3 in, mode 4 out, origin = the client's
// transmit timestamp, receive = the time the shell took first thing on arrival, poll and version
// echoed, the rest from the reference state. The transmit timestamp is left for the shell to write
// just before the send (stampTransmit), so it is as late as it can be.
// The reply is never larger than the request: extension fields are mirrored (RFC 7822 servers echo
// what they do not understand by size), a legacy MAC is not (we hold no keys). Pure: no clock, no I/O.

/** What the server currently claims about its clock (from reference.ts). */
export interface ServedReference {
  leap: Leap;
  stratum: number;
  referenceId: number;
  referenceTimestamp: NtpTimestamp;
  rootDelayS: number;
  rootDispersionS: number;
  /** log2 seconds of the clock reading resolution. */
  precision: number;
}

/** RFC 5905 §7.4 kiss codes we send. */
export const KISS_RATE = asciiReferenceId('RATE');

/**
 * Builds the reply to an admitted client request; the transmit timestamp is still zero. `out`, when
 * given, is written whole (any earlier bytes in it are overwritten) and must be `replyLength` long.
 */
export function buildReply(request: NtpPacket, rx: NtpTimestamp, reference: ServedReference, out: Uint8Array = new Uint8Array(replyLength(request))): Uint8Array {
  writeHeader(out, {
    leap: reference.leap,
    version: request.version,
    mode: NtpMode.Server,
    stratum: reference.stratum,
    poll: request.poll,
    precision: reference.precision,
    rootDelay: shortFromSeconds(reference.rootDelayS),
    rootDispersion: shortFromSeconds(reference.rootDispersionS),
    referenceId: reference.referenceId,
    referenceTimestamp: reference.referenceTimestamp,
    originTimestamp: request.transmitTimestamp,
    receiveTimestamp: rx,
    transmitTimestamp: ZERO_TIMESTAMP,
  });
  mirrorExtensions(out, request);
  return out;
}

/**
 * A Kiss-o'-Death RATE (RFC 5905 §7.4): stratum 0, the kiss code in the reference id, leap 3 so a
 * client that ignores kiss codes still refuses the time; same size rules as a reply.
 */
export function buildKissOfDeath(request: NtpPacket, rx: NtpTimestamp, code = KISS_RATE, out: Uint8Array = new Uint8Array(replyLength(request))): Uint8Array {
  writeHeader(out, {
    leap: LeapIndicator.Unsynchronised,
    version: request.version,
    mode: NtpMode.Server,
    stratum: STRATUM_KOD,
    poll: request.poll,
    precision: 0,
    rootDelay: 0,
    rootDispersion: 0,
    referenceId: code,
    referenceTimestamp: ZERO_TIMESTAMP,
    originTimestamp: request.transmitTimestamp,
    receiveTimestamp: rx,
    transmitTimestamp: ZERO_TIMESTAMP,
  });
  mirrorExtensions(out, request);
  return out;
}

/** Header plus mirrored extension fields (v4 only); never more than the request. */
export function replyLength(request: NtpPacket): number {
  if (request.version < 4) return HEADER_LENGTH;
  let n = HEADER_LENGTH;
  for (const e of request.extensions) n += 4 + e.value.byteLength;
  return n;
}

function mirrorExtensions(out: Uint8Array, request: NtpPacket): void {
  if (request.version < 4) return;
  let at = HEADER_LENGTH;
  for (const e of request.extensions) {
    const length = 4 + e.value.byteLength;
    out[at] = e.type >>> 8;
    out[at + 1] = e.type & 0xff;
    out[at + 2] = length >>> 8;
    out[at + 3] = length & 0xff;
    out.set(e.value, at + 4);
    at += length;
  }
}

/** Writes the transmit timestamp into a built reply (the shell calls this just before send). */
export function stampTransmit(reply: Uint8Array, tx: NtpTimestamp): void {
  writeTimestamp(new DataView(reply.buffer, reply.byteOffset, reply.byteLength), TRANSMIT_OFFSET, tx);
}
