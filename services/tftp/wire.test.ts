import t from 'tap';
import { readHexPacket } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { decodePacket, encodeAck, encodeData, encodeError, encodeOack, encodePacket, encodeRequest, type TftpPacket } from './wire.js';
import { negotiate } from './transfer.js';

const golden = (name: string): Uint8Array => readHexPacket(repoPath('test', 'golden', 'tftp', name));

t.test('real clients\' RRQs decode to the expected request', async (t) => {
  const cases: Array<[string, TftpPacket]> = [
    ['rrq-curl-options.hex', { op: 'rrq', filename: 'blob.bin', mode: 'octet', options: [{ name: 'tsize', value: '0' }, { name: 'blksize', value: '512' }, { name: 'timeout', value: '6' }] }],
    ['rrq-plain.hex', { op: 'rrq', filename: 'exact64k.bin', mode: 'octet', options: [] }],
    ['rrq-ipxe.hex', { op: 'rrq', filename: 'boot.ipxe', mode: 'octet', options: [{ name: 'blksize', value: '1432' }, { name: 'tsize', value: '0' }] }],
    ['rrq-uboot.hex', { op: 'rrq', filename: 'boot.scr.uimg', mode: 'octet', options: [{ name: 'timeout', value: '5' }, { name: 'blksize', value: '1468' }] }],
  ];
  for (const [file, want] of cases) {
    const bytes = golden(file);
    const got = decodePacket(bytes);
    t.same(got, { ok: true, value: want }, file);
    t.same([...encodePacket(want)], [...bytes], `${file} re-encodes byte for byte`);
  }
});

t.test('our OACK to iPXE matches the captured one byte for byte', async (t) => {
  const request = decodePacket(golden('rrq-ipxe.hex'));
  if (!request.ok || request.value.op !== 'rrq') throw new Error('golden RRQ did not decode');
  const n = negotiate(request.value.options, 189, { blksizeMax: 1468, windowsizeMax: 16, timeoutMs: 1000 });
  t.same([...encodeOack(n.oack)], [...golden('oack-ipxe.hex')]);
});

t.test('edge cases decode as a sentence says', async (t) => {
  const cases: Array<[string, Uint8Array, unknown]> = [
    ['an empty packet is short', new Uint8Array(0), { ok: false, code: 'short' }],
    ['one octet is short', new Uint8Array([0]), { ok: false, code: 'short' }],
    ['opcode 7 is unknown', new Uint8Array([0, 7, 0, 0]), { ok: false, code: 'opcode' }],
    ['an ACK without a block number is short', new Uint8Array([0, 4, 0]), { ok: false, code: 'short' }],
    ['an RRQ without the mode NUL is unterminated', Buffer.from('\x00\x01file\x00octet', 'latin1'), { ok: false, code: 'unterminated' }],
    ['an RRQ with an empty name is refused', Buffer.from('\x00\x01\x00octet\x00', 'latin1'), { ok: false, code: 'empty-filename' }],
    ['an RRQ with only a name is unterminated', Buffer.from('\x00\x01file\x00', 'latin1'), { ok: false, code: 'unterminated' }],
  ];
  for (const [name, bytes, want] of cases) {
    const got = decodePacket(bytes);
    t.same(got.ok ? { ok: true } : { ok: false, code: got.error.code }, want, name);
  }
  const upper = decodePacket(Buffer.from('\x00\x01F\x00OCTET\x00BLKSIZE\x001024\x00dangling\x00', 'latin1'));
  t.same(upper.ok && upper.value, { op: 'rrq', filename: 'F', mode: 'octet', options: [{ name: 'blksize', value: '1024' }] }, 'mode and option names lower-cased, a name without value dropped');
  const err = decodePacket(Buffer.from('\x00\x05\x00\x08no\x00', 'latin1'));
  t.same(err.ok && err.value, { op: 'error', code: 8, message: 'no' }, 'ERROR 8');
  const high = decodePacket(Buffer.from('\x00\x01\xff\xfe\x00octet\x00', 'latin1'));
  t.equal(high.ok && high.value.op === 'rrq' && high.value.filename, '\xff\xfe', 'high octets survive as latin1');
});

t.test('encoders', async (t) => {
  t.same([...encodeAck(0x1_0001)], [0, 4, 0, 1], 'ACK block wraps modulo 2^16');
  t.same([...encodeData(65536, new Uint8Array([9]))], [0, 3, 0, 0, 9], 'DATA 65536 goes out as 0');
  t.same([...encodeError(2, 'no')], [0, 5, 0, 2, 110, 111, 0], 'ERROR 2');
  t.same([...encodeRequest('wrq', 'a', 'octet')], [0, 2, 97, 0, ...Buffer.from('octet'), 0], 'WRQ');
});
