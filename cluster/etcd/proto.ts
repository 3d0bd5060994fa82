// The few etcd v3 gRPC messages the hot path uses (etcd's rpc.proto and mvccpb/kv.proto, field
// numbers as published there), hand-encoded: KV.Range, KV.Txn and Watch.Watch. Encoding builds
// bytes; decoding never throws on hostile input (a malformed message decodes to null).
// Not here: the HTTP/2 transport and gRPC framing (client.ts).

export interface ProtoKeyValue {
  key: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Uint8Array;
  /** int64 lease ID as a decimal string ('0' when none). */
  lease: string;
}

export interface ProtoHeader { revision: number; memberId: string }

export type ProtoCompare = {
  key: Uint8Array;
  /** CompareResult: EQUAL 0, GREATER 1, LESS 2, NOT_EQUAL 3. */
  result: number;
} & ({ target: 'CREATE'; createRevision: number } | { target: 'MOD'; modRevision: number } | { target: 'VALUE'; value: Uint8Array });

export type ProtoOp =
  | { put: { key: Uint8Array; value: Uint8Array; lease?: string } }
  | { range: ProtoRange }
  | { deleteRange: { key: Uint8Array; rangeEnd?: Uint8Array } };

export interface ProtoRange {
  key: Uint8Array;
  rangeEnd?: Uint8Array | undefined;
  limit?: number | undefined;
  revision?: number | undefined;
  serializable?: boolean | undefined;
  keysOnly?: boolean | undefined;
  countOnly?: boolean | undefined;
  minModRevision?: number | undefined;
  maxModRevision?: number | undefined;
}

export interface ProtoRangeResponse { header: ProtoHeader; kvs: ProtoKeyValue[]; count: number }
export interface ProtoTxnResponse { header: ProtoHeader; succeeded: boolean; ranges: ProtoKeyValue[][] }
export interface ProtoWatchResponse {
  header: ProtoHeader;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  cancelReason: string;
  events: Array<{ type: 'put' | 'delete'; kv: ProtoKeyValue }>;
}

// ---- writer -------------------------------------------------------------------------------------

class Writer {
  #chunks: number[] = [];
  #parts: Uint8Array[] = [];

  #flush(): void {
    if (this.#chunks.length > 0) {
      this.#parts.push(Uint8Array.from(this.#chunks));
      this.#chunks = [];
    }
  }

  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    if (typeof value === 'number' && value >= 0 && value < 0x80000000) {
      let n = value;
      while (n > 0x7f) { this.#chunks.push((n & 0x7f) | 0x80); n >>>= 7; }
      this.#chunks.push(n);
      return;
    }
    while (v > 0x7fn) { this.#chunks.push(Number(v & 0x7fn) | 0x80); v >>= 7n; }
    this.#chunks.push(Number(v));
  }

  tag(field: number, wire: number): void { this.varint(field * 8 + wire); }
  /** A varint field; zero is written too (a oneof member must be present even when 0). */
  int(field: number, value: number | bigint): void { this.tag(field, 0); this.varint(value); }
  bool(field: number, value: boolean | undefined): void { if (value) this.int(field, 1); }
  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.#flush();
    this.#parts.push(value);
  }
  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    this.#flush();
    if (this.#parts.length === 1) return this.#parts[0]!;
    let length = 0;
    for (const p of this.#parts) length += p.length;
    const out = new Uint8Array(length);
    let at = 0;
    for (const p of this.#parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

function writeRange(w: Writer, r: ProtoRange): void {
  w.bytes(1, r.key);
  if (r.rangeEnd !== undefined) w.bytes(2, r.rangeEnd);
  if (r.limit !== undefined) w.int(3, r.limit);
  if (r.revision !== undefined) w.int(4, r.revision);
  w.bool(7, r.serializable);
  w.bool(8, r.keysOnly);
  w.bool(9, r.countOnly);
  if (r.minModRevision !== undefined) w.int(10, r.minModRevision);
  if (r.maxModRevision !== undefined) w.int(11, r.maxModRevision);
}

export function encodeRangeRequest(r: ProtoRange): Uint8Array {
  const w = new Writer();
  writeRange(w, r);
  return w.finish();
}

const TARGET = { CREATE: 1, MOD: 2, VALUE: 3 } as const;

function writeOp(w: Writer, op: ProtoOp): void {
  if ('put' in op) {
    w.message(2, (p) => {
      p.bytes(1, op.put.key);
      p.bytes(2, op.put.value);
      if (op.put.lease !== undefined && op.put.lease !== '0') p.int(3, BigInt(op.put.lease));
    });
  } else if ('range' in op) {
    w.message(1, (r) => writeRange(r, op.range));
  } else {
    w.message(3, (d) => {
      d.bytes(1, op.deleteRange.key);
      if (op.deleteRange.rangeEnd !== undefined) d.bytes(2, op.deleteRange.rangeEnd);
    });
  }
}

export function encodeTxnRequest(compare: readonly ProtoCompare[], success: readonly ProtoOp[], failure: readonly ProtoOp[]): Uint8Array {
  const w = new Writer();
  for (const c of compare) {
    w.message(1, (m) => {
      if (c.result !== 0) m.int(1, c.result);
      m.int(2, TARGET[c.target]);
      m.bytes(3, c.key);
      if (c.target === 'CREATE') m.int(5, c.createRevision);
      else if (c.target === 'MOD') m.int(6, c.modRevision);
      else m.bytes(7, c.value);
    });
  }
  for (const op of success) w.message(2, (m) => writeOp(m, op));
  for (const op of failure) w.message(3, (m) => writeOp(m, op));
  return w.finish();
}

export function encodeWatchCreate(key: Uint8Array, rangeEnd: Uint8Array, startRevision: number): Uint8Array {
  const w = new Writer();
  w.message(1, (c) => {
    c.bytes(1, key);
    c.bytes(2, rangeEnd);
    c.int(3, startRevision);
  });
  return w.finish();
}

// ---- reader -------------------------------------------------------------------------------------

/** A cursor over one message; any overrun or bad wire type latches `bad`. */
class Reader {
  readonly #b: Uint8Array;
  #at: number;
  readonly #end: number;
  bad = false;

  constructor(b: Uint8Array, start = 0, end = b.length) {
    this.#b = b;
    this.#at = start;
    this.#end = end;
  }

  get done(): boolean { return this.bad || this.#at >= this.#end; }

  /** A varint as a number (exact below 2^53; revisions and counts are). */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#at >= this.#end) { this.bad = true; return 0; }
      const byte = this.#b[this.#at++]!;
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return result;
      scale *= 128;
    }
    this.bad = true;
    return 0;
  }

  /** A varint as an unsigned 64-bit decimal string (lease IDs). */
  bigVarint(): string {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.#at >= this.#end) { this.bad = true; return '0'; }
      const byte = this.#b[this.#at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return BigInt.asIntN(64, result).toString();
      shift += 7n;
    }
    this.bad = true;
    return '0';
  }

  /** The next length-delimited field as a sub-reader's bounds. */
  span(): [number, number] {
    const length = this.varint();
    if (this.bad || length > this.#end - this.#at) { this.bad = true; return [this.#at, this.#at]; }
    const start = this.#at;
    this.#at += length;
    return [start, this.#at];
  }

  bytes(): Uint8Array {
    const [s, e] = this.span();
    return this.#b.slice(s, e);
  }

  sub(): Reader {
    const [s, e] = this.span();
    return new Reader(this.#b, s, e);
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.#advance(8);
    else if (wire === 2) this.span();
    else if (wire === 5) this.#advance(4);
    else this.bad = true;
  }

  #advance(n: number): void {
    if (n > this.#end - this.#at) this.bad = true;
    else this.#at += n;
  }

  /** Calls `field` for each (number, wire type); returns false when the message is malformed. */
  fields(field: (n: number, wire: number) => boolean): boolean {
    while (!this.done) {
      const tag = this.varint();
      if (this.bad) break;
      const n = Math.floor(tag / 8);
      const wire = tag % 8;
      if (!field(n, wire)) this.skip(wire);
    }
    return !this.bad;
  }
}

function readHeader(r: Reader): ProtoHeader {
  const h: ProtoHeader = { revision: 0, memberId: '0' };
  r.fields((n, wire) => {
    if (n === 2 && wire === 0) { h.memberId = BigInt.asUintN(64, BigInt(r.bigVarint())).toString(); return true; }
    if (n === 3 && wire === 0) { h.revision = r.varint(); return true; }
    return false;
  });
  return h;
}

function readKv(r: Reader): ProtoKeyValue | null {
  const kv: ProtoKeyValue = { key: new Uint8Array(0), createRevision: 0, modRevision: 0, version: 0, value: new Uint8Array(0), lease: '0' };
  const ok = r.fields((n, wire) => {
    if (wire === 2 && n === 1) kv.key = r.bytes();
    else if (wire === 2 && n === 5) kv.value = r.bytes();
    else if (wire === 0 && n === 2) kv.createRevision = r.varint();
    else if (wire === 0 && n === 3) kv.modRevision = r.varint();
    else if (wire === 0 && n === 4) kv.version = r.varint();
    else if (wire === 0 && n === 6) kv.lease = r.bigVarint();
    else return false;
    return true;
  });
  return ok ? kv : null;
}

function readRangeResponse(r: Reader): ProtoRangeResponse | null {
  const out: ProtoRangeResponse = { header: { revision: 0, memberId: '0' }, kvs: [], count: 0 };
  let bad = false;
  const ok = r.fields((n, wire) => {
    if (n === 1 && wire === 2) out.header = readHeader(r.sub());
    else if (n === 2 && wire === 2) {
      const kv = readKv(r.sub());
      if (kv === null) bad = true;
      else out.kvs.push(kv);
    } else if (n === 4 && wire === 0) out.count = r.varint();
    else return false;
    return true;
  });
  return ok && !bad ? out : null;
}

export function decodeRangeResponse(bytes: Uint8Array): ProtoRangeResponse | null {
  return readRangeResponse(new Reader(bytes));
}

export function decodeTxnResponse(bytes: Uint8Array): ProtoTxnResponse | null {
  const r = new Reader(bytes);
  const out: ProtoTxnResponse = { header: { revision: 0, memberId: '0' }, succeeded: false, ranges: [] };
  let bad = false;
  const ok = r.fields((n, wire) => {
    if (n === 1 && wire === 2) out.header = readHeader(r.sub());
    else if (n === 2 && wire === 0) out.succeeded = r.varint() !== 0;
    else if (n === 3 && wire === 2) {
      // ResponseOp: a range's kvs, or nothing for puts and deletes.
      const op = r.sub();
      let kvs: ProtoKeyValue[] = [];
      const opOk = op.fields((m, w) => {
        if (m === 1 && w === 2) {
          const range = readRangeResponse(op.sub());
          if (range === null) bad = true;
          else kvs = range.kvs;
          return true;
        }
        return false;
      });
      if (!opOk) bad = true;
      out.ranges.push(kvs);
    } else return false;
    return true;
  });
  return ok && !bad ? out : null;
}

export function decodeWatchResponse(bytes: Uint8Array): ProtoWatchResponse | null {
  const r = new Reader(bytes);
  const out: ProtoWatchResponse = { header: { revision: 0, memberId: '0' }, created: false, canceled: false, compactRevision: 0, cancelReason: '', events: [] };
  let bad = false;
  const ok = r.fields((n, wire) => {
    if (n === 1 && wire === 2) out.header = readHeader(r.sub());
    else if (n === 3 && wire === 0) out.created = r.varint() !== 0;
    else if (n === 4 && wire === 0) out.canceled = r.varint() !== 0;
    else if (n === 5 && wire === 0) out.compactRevision = r.varint();
    else if (n === 6 && wire === 2) out.cancelReason = Buffer.from(r.bytes()).toString('utf8');
    else if (n === 11 && wire === 2) {
      const e = r.sub();
      const event: { type: 'put' | 'delete'; kv: ProtoKeyValue | null } = { type: 'put', kv: null };
      const eOk = e.fields((m, w) => {
        if (m === 1 && w === 0) { event.type = e.varint() === 1 ? 'delete' : 'put'; return true; }
        if (m === 2 && w === 2) { event.kv = readKv(e.sub()); return true; }
        return false;
      });
      if (!eOk || event.kv === null) bad = true;
      else out.events.push({ type: event.type, kv: event.kv });
    } else return false;
    return true;
  });
  return ok && !bad ? out : null;
}
