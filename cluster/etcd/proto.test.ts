import t from 'tap';
import fc from 'fast-check';
import { decodeRangeResponse, decodeTxnResponse, decodeWatchResponse, encodeRangeRequest, encodeTxnRequest, encodeWatchCreate } from './proto.js';

// The hand-encoded etcd gRPC messages (proto.ts): golden bytes for what we send (protobuf wire
// format by hand: tag = field << 3 | wire type), and decoders that never throw on hostile bytes.

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

t.test('requests encode as etcd\'s rpc.proto says', async (t) => {
  // RangeRequest{key "a" (1), range_end "b" (2), limit 1 (3), keys_only (8)}
  t.equal(hex(encodeRangeRequest({ key: bytes('a'), rangeEnd: bytes('b'), limit: 1, keysOnly: true })), '0a0161' + '120162' + '1801' + '4001');
  // TxnRequest{compare[{result LESS, target MOD, key "k", mod_revision 300}], success[{request_put{key "k", value "v", lease 2^62}}]}
  const txn = encodeTxnRequest([{ key: bytes('k'), result: 2, target: 'MOD', modRevision: 300 }], [{ put: { key: bytes('k'), value: bytes('v'), lease: String(2n ** 62n) } }], []);
  t.equal(hex(txn), '0a0a' + '0802' + '1002' + '1a016b' + '30ac02' + '1212' + '1210' + '0a016b' + '120176' + '18' + '808080808080808040');
  // a create_revision compare with 0 is still written (a oneof member)
  t.equal(hex(encodeTxnRequest([{ key: bytes('k'), result: 0, target: 'CREATE', createRevision: 0 }], [], [])), '0a07' + '1001' + '1a016b' + '2800');
  // WatchRequest{create_request{key, range_end, start_revision 5}}
  t.equal(hex(encodeWatchCreate(bytes('a'), bytes('b'), 5)), '0a08' + '0a0161' + '120162' + '1805');
});

t.test('answers decode; a lease ID past 2^53 stays exact', async (t) => {
  // WatchResponse{header{revision 9}, events[{type DELETE, kv{key "k", mod_revision 9, lease 2^62}}]}
  const kv = '0a016b' + '1809' + '30' + '8080808080808080' + '40';
  const event = '0801' + '12' + (kv.length / 2).toString(16).padStart(2, '0') + kv;
  const watch = Buffer.from('0a021809' + '5a' + (event.length / 2).toString(16).padStart(2, '0') + event, 'hex');
  const w = decodeWatchResponse(watch);
  t.equal(w?.header.revision, 9);
  t.same(w?.events.map((e) => [e.type, Buffer.from(e.kv.key).toString(), e.kv.modRevision, e.kv.lease]), [['delete', 'k', 9, String(2n ** 62n)]]);
  t.equal(decodeTxnResponse(Buffer.from('0a0218071001', 'hex'))?.succeeded, true);
  t.equal(decodeRangeResponse(Buffer.from('0a021807' + '2003', 'hex'))?.count, 3);
  t.equal(decodeRangeResponse(Buffer.from('0a05', 'hex')), null, 'a field longer than the message: null');
});

t.test('hostile bytes never throw', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
    decodeRangeResponse(b);
    decodeTxnResponse(b);
    decodeWatchResponse(b);
    return true;
  }), { numRuns: 5000 });
});
