import { WireReader } from '../../lib/wire-reader.js';
import { decoded, failed, type Decoded } from '../../lib/result.js';

// TFTP packets (RFC 1350 §5, options RFC 2347 §2). Every field is big-endian; strings are octets
// ended by a NUL. The decoder never throws: bad bytes come back as a DecodeError.
//
//   RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ... |
//   DATA     | 03    | block (2) | data (0..blksize octets)                   |
//   ACK      | 04    | block (2) |
//   ERROR    | 05    | code (2)  | message | 0 |
//   OACK     | 06    | opt1 | 0 | value1 | 0 | ... |          (RFC 2347)

export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 §5 error codes, plus 8 from RFC 2347. */
export const ErrorCode = {
  notDefined: 0,
  fileNotFound: 1,
  accessViolation: 2,
  diskFull: 3,
  illegalOperation: 4,
  unknownTid: 5,
  fileExists: 6,
  noSuchUser: 7,
  optionRefused: 8,
} as const;

export interface TftpOption {
  /** Lower-cased option name (RFC 2347: names are case-insensitive). */
  name: string;
  value: string;
}

export interface RequestPacket {
  op: 'rrq' | 'wrq';
  /** The name as sent, one char per octet (latin1), so no byte is lost or merged. */
  filename: string;
  /** Lower-cased transfer mode ("octet", "netascii", "mail", or whatever the client wrote). */
  mode: string;
  options: TftpOption[];
}

export type TftpPacket =
  | RequestPacket
  | { op: 'data'; block: number; data: Uint8Array }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: TftpOption[] };

export type TftpDecodeError = 'short' | 'opcode' | 'unterminated' | 'empty-filename';

/** Reads NUL-terminated latin1 strings from `offset` to the end; `rest` is false when the last lacks its NUL. */
function strings(bytes: Uint8Array, offset: number): { list: string[]; terminated: boolean } {
  const list: string[] = [];
  let start = offset;
  for (let i = offset; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      list.push(latin1(bytes, start, i));
      start = i + 1;
    }
  }
  return { list, terminated: start === bytes.length };
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

function optionList(list: readonly string[]): TftpOption[] {
  const options: TftpOption[] = [];
  // RFC 2347 §2: options come in name/value pairs; a trailing name without a value is dropped.
  for (let i = 0; i + 1 < list.length; i += 2) options.push({ name: list[i]!.toLowerCase(), value: list[i + 1]! });
  return options;
}

export function decodePacket(bytes: Uint8Array): Decoded<TftpPacket, TftpDecodeError> {
  const r = new WireReader(bytes);
  const opcode = r.u16();
  if (r.overrun) return failed('short', 0);
  switch (opcode) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      const { list, terminated } = strings(bytes, 2);
      if (!terminated || list.length < 2) return failed('unterminated', bytes.length, 'filename and mode need their NULs');
      if (list[0] === '') return failed('empty-filename', 2);
      return decoded({ op: opcode === Opcode.RRQ ? 'rrq' : 'wrq', filename: list[0]!, mode: list[1]!.toLowerCase(), options: optionList(list.slice(2)) });
    }
    case Opcode.DATA: {
      const block = r.u16();
      if (r.overrun) return failed('short', 2);
      return decoded({ op: 'data', block, data: bytes.subarray(4) });
    }
    case Opcode.ACK: {
      const block = r.u16();
      if (r.overrun) return failed('short', 2);
      return decoded({ op: 'ack', block });
    }
    case Opcode.ERROR: {
      const code = r.u16();
      if (r.overrun) return failed('short', 2);
      // Be liberal: a message without its NUL is still an error from the peer.
      const end = bytes.indexOf(0, 4);
      return decoded({ op: 'error', code, message: latin1(bytes, 4, end < 0 ? bytes.length : end) });
    }
    case Opcode.OACK: {
      const { list, terminated } = strings(bytes, 2);
      if (!terminated) return failed('unterminated', bytes.length);
      return decoded({ op: 'oack', options: optionList(list) });
    }
    default:
      return failed('opcode', 0, `opcode ${opcode}`);
  }
}

function withStrings(opcode: number, head: readonly number[], list: readonly string[]): Buffer {
  const parts = list.map((s) => Buffer.from(s, 'latin1'));
  const size = 2 + head.length * 2 + parts.reduce((n, p) => n + p.length + 1, 0);
  const out = Buffer.alloc(size);
  out.writeUInt16BE(opcode, 0);
  let at = 2;
  for (const h of head) { out.writeUInt16BE(h & 0xffff, at); at += 2; }
  for (const p of parts) { p.copy(out, at); at += p.length + 1; }
  return out;
}

export function encodeRequest(op: 'rrq' | 'wrq', filename: string, mode: string, options: readonly TftpOption[] = []): Buffer {
  return withStrings(op === 'rrq' ? Opcode.RRQ : Opcode.WRQ, [], [filename, mode, ...options.flatMap((o) => [o.name, o.value])]);
}

export function encodeOack(options: readonly TftpOption[]): Buffer {
  return withStrings(Opcode.OACK, [], options.flatMap((o) => [o.name, o.value]));
}

export function encodeError(code: number, message: string): Buffer {
  return withStrings(Opcode.ERROR, [code], [message]);
}

export function encodeAck(block: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt16BE(Opcode.ACK, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

/** A DATA packet with room for `length` payload octets after the header; the caller fills them. */
export function dataPacket(block: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(4 + length);
  out.writeUInt16BE(Opcode.DATA, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

export function encodeData(block: number, data: Uint8Array): Buffer {
  const out = dataPacket(block, data.length);
  out.set(data, 4);
  return out;
}

export function encodePacket(packet: TftpPacket): Buffer {
  switch (packet.op) {
    case 'rrq':
    case 'wrq': return encodeRequest(packet.op, packet.filename, packet.mode, packet.options);
    case 'data': return encodeData(packet.block, packet.data);
    case 'ack': return encodeAck(packet.block);
    case 'error': return encodeError(packet.code, packet.message);
    case 'oack': return encodeOack(packet.options);
  }
}
