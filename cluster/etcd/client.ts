import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as http2Connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { LanhaError } from '../../lib/errors.js';
import { decodeRangeResponse, decodeTxnResponse, decodeWatchResponse, encodeRangeRequest, encodeTxnRequest, encodeWatchCreate, type ProtoCompare, type ProtoKeyValue, type ProtoOp } from './proto.js';

// A small etcd v3 client: no dependency, only node:http(s) and node:http2. The hot path (KV.Range,
// KV.Txn, Watch.Watch) speaks gRPC itself: HTTP/2 to the client URL (h2c on http://, ALPN h2 on
// https://), one session per endpoint, the few messages hand-encoded (proto.ts). Through etcd's JSON
// gateway each call cost etcd a JSON decode, a gRPC call to itself over a socket and a JSON encode;
// the bench measured that member using twice the CPU of the others. The rest (leases, auth, status,
// put, delete, compaction: a few calls a second) goes through the gateway (POST /v3/lease/*,
// /v3/maintenance/status, ...; keys and values in base64, int64 as decimal strings). Requests go to
// the current endpoint; a connection failure, timeout or "unavailable" answer moves to the next
// one, and errors name the endpoint that failed. Not here: what the keys mean (state-log.ts).

export interface EtcdClientOptions {
  endpoints: readonly string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  dialTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** false: Range, Txn and Watch through the JSON gateway too (default true: gRPC). */
  grpc?: boolean;
}

export interface KeyValue {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

export type Compare =
  | { key: string; target: 'CREATE'; result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL'; createRevision: number }
  | { key: string; target: 'MOD'; result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL'; modRevision: number }
  | { key: string; target: 'VALUE'; result: 'EQUAL' | 'NOT_EQUAL'; value: Uint8Array };

export type TxnOp =
  | { put: { key: string; value: Uint8Array; lease?: string } }
  | { range: { key: string; rangeEnd?: string } }
  | { deleteRange: { key: string; rangeEnd?: string } };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  /** The kvs of each range op, in order (empty arrays for puts and deletes). */
  ranges: KeyValue[][];
}

export interface EndpointHealth {
  endpoint: string;
  ok: boolean;
  /** The member's error, or null. */
  error: string | null;
  version?: string;
  /** True when this member is the etcd leader. */
  isLeader?: boolean;
  revision?: number;
}

/** gRPC status codes the gateway passes through (google.golang.org/grpc/codes). */
const GrpcCode = { unavailable: 14, deadlineExceeded: 4, outOfRange: 11, notFound: 5, failedPrecondition: 9, unauthenticated: 16 } as const;

export class EtcdError extends LanhaError {
  readonly endpoint: string;
  /** The gRPC code of etcd's answer, or null for a transport failure. */
  readonly grpcCode: number | null;
  constructor(endpoint: string, message: string, grpcCode: number | null) {
    super('unavailable', `etcd ${endpoint}: ${message}`);
    this.endpoint = endpoint;
    this.grpcCode = grpcCode;
  }

  /** The revision asked for has been compacted away (range at a revision, or a watch). */
  get compacted(): boolean { return this.grpcCode === GrpcCode.outOfRange; }
}

const encoder = new TextEncoder();
const b64 = (bytes: Uint8Array | string): string => Buffer.from(typeof bytes === 'string' ? encoder.encode(bytes) : bytes).toString('base64');
const unb64 = (s: unknown): Uint8Array => (typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'base64')) : new Uint8Array(0));
const int = (s: unknown): number => (typeof s === 'string' || typeof s === 'number' ? Number(s) : 0);

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = bytes.subarray(0, i + 1);
      end[i]! += 1;
      return end.toString('latin1');
    }
  }
  return '\0';
}

function rawKey(key: string): string {
  // prefixEnd() returns latin1 strings for byte-level ends; plain keys are UTF-8.
  return key;
}

function decodeKv(o: Record<string, unknown>): KeyValue {
  return {
    key: Buffer.from(unb64(o['key'])).toString('utf8'),
    value: unb64(o['value']),
    createRevision: int(o['create_revision']),
    modRevision: int(o['mod_revision']),
    version: int(o['version']),
    lease: typeof o['lease'] === 'string' ? o['lease'] : '0',
  };
}

function encodeCompare(c: Compare): Record<string, unknown> {
  const base = { key: b64(rawKey(c.key)), target: c.target, result: c.result };
  if (c.target === 'CREATE') return { ...base, create_revision: String(c.createRevision) };
  if (c.target === 'MOD') return { ...base, mod_revision: String(c.modRevision) };
  return { ...base, value: b64(c.value) };
}

function encodeOp(op: TxnOp): Record<string, unknown> {
  if ('put' in op) return { request_put: { key: b64(op.put.key), value: b64(op.put.value), ...(op.put.lease ? { lease: op.put.lease } : {}) } };
  if ('range' in op) return { request_range: { key: b64(op.range.key), ...(op.range.rangeEnd !== undefined ? { range_end: Buffer.from(op.range.rangeEnd, 'latin1').toString('base64') } : {}) } };
  return { request_delete_range: { key: b64(op.deleteRange.key), ...(op.deleteRange.rangeEnd !== undefined ? { range_end: Buffer.from(op.deleteRange.rangeEnd, 'latin1').toString('base64') } : {}) } };
}

export interface Watch {
  /** Resolves when the stream ends: null after cancel(), else the error that ended it. */
  readonly done: Promise<EtcdError | null>;
  cancel(): void;
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  #o: EtcdClientOptions;
  #current = 0;
  #token: string | null = null;
  #closed = false;
  #open = new Set<ClientRequest>();
  /** Unary calls reuse connections (a new TCP + TLS handshake per lease would cost more than the txn). */
  #agents: { http: HttpAgent; https: HttpsAgent };
  /** gRPC: one HTTP/2 session per endpoint, unary calls and watches multiplexed on it. */
  #sessions = new Map<string, ClientHttp2Session>();
  #streams = new Set<ClientHttp2Stream>();

  constructor(o: EtcdClientOptions) {
    if (o.endpoints.length === 0) throw new LanhaError('config-invalid', 'no etcd endpoint given');
    this.#o = o;
    const tls = o.tls ?? {};
    this.#agents = {
      http: new HttpAgent({ keepAlive: true, maxSockets: 32 }),
      https: new HttpsAgent({ keepAlive: true, maxSockets: 32, ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) }),
    };
    this.endpoints = o.endpoints.map((e) => e.replace(/\/$/, ''));
  }

  /** The endpoint requests go to now. */
  get endpoint(): string { return this.endpoints[this.#current]!; }

  /** Moves to the next endpoint (the current one failed outside call(), e.g. a watch). */
  failover(): void {
    this.#current = (this.#current + 1) % this.endpoints.length;
  }

  close(): void {
    this.#closed = true;
    for (const r of this.#open) r.destroy();
    this.#open.clear();
    for (const st of this.#streams) st.close(h2.NGHTTP2_CANCEL);
    this.#streams.clear();
    for (const session of this.#sessions.values()) session.destroy();
    this.#sessions.clear();
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  async range(key: string, o: { rangeEnd?: string; revision?: number; serializable?: boolean; countOnly?: boolean; keysOnly?: boolean; limit?: number; minModRevision?: number; maxModRevision?: number } = {}): Promise<{ kvs: KeyValue[]; revision: number; count: number }> {
    if (this.#o.grpc !== false) {
      const r = await this.#grpc('/etcdserverpb.KV/Range', encodeRangeRequest({ ...o, key: encoder.encode(key), rangeEnd: o.rangeEnd === undefined ? undefined : Buffer.from(o.rangeEnd, 'latin1') }), decodeRangeResponse);
      return { kvs: r.kvs.map(fromProto), revision: r.header.revision, count: r.count };
    }
    const body: Record<string, unknown> = { key: b64(key) };
    if (o.keysOnly) body['keys_only'] = true;
    if (o.limit !== undefined) body['limit'] = String(o.limit);
    if (o.minModRevision !== undefined) body['min_mod_revision'] = String(o.minModRevision);
    if (o.maxModRevision !== undefined) body['max_mod_revision'] = String(o.maxModRevision);
    if (o.rangeEnd !== undefined) body['range_end'] = Buffer.from(o.rangeEnd, 'latin1').toString('base64');
    if (o.revision !== undefined) body['revision'] = String(o.revision);
    if (o.serializable) body['serializable'] = true;
    if (o.countOnly) body['count_only'] = true;
    const r = await this.call('/v3/kv/range', body);
    const kvs = Array.isArray(r['kvs']) ? (r['kvs'] as Array<Record<string, unknown>>).map(decodeKv) : [];
    return { kvs, revision: headerRevision(r), count: int(r['count']) };
  }

  async txn(compare: Compare[], success: TxnOp[], failure: TxnOp[] = []): Promise<TxnResult> {
    if (this.#o.grpc !== false) {
      const r = await this.#grpc('/etcdserverpb.KV/Txn', encodeTxnRequest(compare.map(compareToProto), success.map(opToProto), failure.map(opToProto)), decodeTxnResponse);
      return { succeeded: r.succeeded, revision: r.header.revision, ranges: r.ranges.map((kvs) => kvs.map(fromProto)) };
    }
    const r = await this.call('/v3/kv/txn', { compare: compare.map(encodeCompare), success: success.map(encodeOp), failure: failure.map(encodeOp) });
    const responses = Array.isArray(r['responses']) ? (r['responses'] as Array<Record<string, unknown>>) : [];
    return {
      succeeded: r['succeeded'] === true,
      revision: headerRevision(r),
      ranges: responses.map((x) => {
        const range = x['response_range'] as Record<string, unknown> | undefined;
        return range && Array.isArray(range['kvs']) ? (range['kvs'] as Array<Record<string, unknown>>).map(decodeKv) : [];
      }),
    };
  }

  async put(key: string, value: Uint8Array | string, lease?: string): Promise<number> {
    const r = await this.call('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) });
    return headerRevision(r);
  }

  async deleteRange(key: string, rangeEnd?: string): Promise<number> {
    const r = await this.call('/v3/kv/deleterange', { key: b64(key), ...(rangeEnd !== undefined ? { range_end: Buffer.from(rangeEnd, 'latin1').toString('base64') } : {}) });
    return int(r['deleted']);
  }

  async compact(revision: number): Promise<void> {
    await this.call('/v3/kv/compaction', { revision: String(revision), physical: true });
  }

  /** A new lease; etcd may raise the TTL to its minimum. */
  async leaseGrant(ttlS: number): Promise<{ id: string; ttlS: number }> {
    const r = await this.call('/v3/lease/grant', { TTL: String(ttlS) });
    if (typeof r['error'] === 'string' && r['error'] !== '') throw new EtcdError(this.endpoint, `lease grant failed: ${r['error']}`, null);
    return { id: String(r['ID']), ttlS: int(r['TTL']) };
  }

  /** One keep-alive; the TTL granted again, 0 when the lease is gone. */
  async leaseKeepAlive(id: string, timeoutMs?: number): Promise<number> {
    const r = await this.call('/v3/lease/keepalive', { ID: id }, timeoutMs);
    const result = (r['result'] ?? r) as Record<string, unknown>;
    return int(result['TTL']);
  }

  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id });
    } catch (error) {
      if (error instanceof EtcdError && error.grpcCode === GrpcCode.notFound) return; // already gone
      throw error;
    }
  }

  /** Each endpoint's answer to a status request (in parallel, one request timeout at most). */
  async health(): Promise<EndpointHealth[]> {
    return Promise.all(this.endpoints.map(async (endpoint): Promise<EndpointHealth> => {
      try {
        const r = await this.#once(endpoint, '/v3/maintenance/status', {}, this.#o.requestTimeoutMs ?? 5000);
        const header = (r['header'] ?? {}) as Record<string, unknown>;
        return { endpoint, ok: true, error: null, version: String(r['version'] ?? ''), isLeader: r['leader'] !== undefined && r['leader'] === header['member_id'], revision: int(header['revision']) };
      } catch (error) {
        return { endpoint, ok: false, error: error instanceof Error ? error.message : String(error) };
      }
    }));
  }

  /**
   * Watches keys [key, rangeEnd) from `startRevision` on one endpoint; `onEvents` gets each batch
   * (one revision's events together, in revision order). The stream ends on cancel(), on a
   * transport error, or when etcd cancels it (compacted start revision: `compacted` on the error).
   * It asks etcd to end it when that member loses its leader (gRPC metadata `hasleader`, through
   * the gateway's Grpc-Metadata- headers), so a member cut off from the quorum does not leave the
   * watch silently stale.
   */
  watch(key: string, rangeEnd: string, startRevision: number, onEvents: (events: WatchEvent[], revision: number) => void): Watch {
    if (this.#o.grpc !== false) return this.#grpcWatch(key, rangeEnd, startRevision, onEvents);
    const endpoint = this.endpoint;
    let cancelled = false;
    let req: ClientRequest | undefined;
    const done = new Promise<EtcdError | null>((resolve) => {
      const body = JSON.stringify({ create_request: { key: b64(key), range_end: Buffer.from(rangeEnd, 'latin1').toString('base64'), start_revision: String(startRevision) } });
      let buffered = '';
      let settled = false;
      const finish = (e: EtcdError | null): void => {
        if (settled) return;
        settled = true;
        if (req) this.#open.delete(req);
        resolve(cancelled ? null : e);
      };
      req = this.#request(endpoint, '/v3/watch', body, (res) => {
        if (res.statusCode !== 200) {
          let text = '';
          res.on('data', (c: Buffer) => { text += c.toString('utf8'); });
          res.on('end', () => finish(errorFromBody(endpoint, res.statusCode ?? 0, text)));
          return;
        }
        res.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (line === '') continue;
            let message: Record<string, unknown>;
            try {
              message = JSON.parse(line) as Record<string, unknown>;
            } catch {
              finish(new EtcdError(endpoint, 'watch stream sent a line that is not JSON', null));
              req?.destroy();
              return;
            }
            const result = message['result'] as Record<string, unknown> | undefined;
            if (!result) {
              finish(errorFromObject(endpoint, message));
              req?.destroy();
              return;
            }
            if (result['canceled'] === true) {
              const compactRevision = int(result['compact_revision']);
              finish(new EtcdError(endpoint, compactRevision > 0 ? `watch start revision ${startRevision} is compacted (oldest kept: ${compactRevision})` : `watch cancelled: ${String(result['cancel_reason'] ?? 'no reason given')}`, compactRevision > 0 ? GrpcCode.outOfRange : null));
              req?.destroy();
              return;
            }
            const events = Array.isArray(result['events']) ? (result['events'] as Array<Record<string, unknown>>) : [];
            if (events.length === 0) continue;
            const decoded = events.map((e): WatchEvent => ({ type: e['type'] === 'DELETE' ? 'delete' : 'put', kv: decodeKv((e['kv'] ?? {}) as Record<string, unknown>) }));
            try {
              onEvents(decoded, decoded[decoded.length - 1]!.kv.modRevision);
            } catch (error) {
              finish(new EtcdError(endpoint, `watch handler failed: ${error instanceof Error ? error.message : String(error)}`, null));
              req?.destroy();
              return;
            }
          }
        });
        res.on('end', () => finish(new EtcdError(endpoint, 'watch stream ended', GrpcCode.unavailable)));
        res.on('error', (error) => finish(new EtcdError(endpoint, `watch stream broke: ${error.message}`, null)));
      }, (error) => finish(transportError(endpoint, error)), null, { 'grpc-metadata-hasleader': 'true' }, false);
    });
    return {
      done,
      cancel: () => {
        cancelled = true;
        req?.destroy();
      },
    };
  }

  /**
   * One unary gateway call, with failover: transport errors and "unavailable" move to the next
   * endpoint, each endpoint tried once; the error names every endpoint that failed. `timeoutMs`
   * (per endpoint) overrides the configured request timeout.
   */
  async call(path: string, body: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>> {
    return this.#failover((endpoint) => this.#once(endpoint, path, body, timeoutMs ?? this.#o.requestTimeoutMs ?? 5000));
  }

  /** One gRPC unary call with the same failover and re-authentication as call(). */
  async #grpc<T>(path: string, message: Uint8Array, decode: (bytes: Uint8Array) => T | null, timeoutMs?: number): Promise<T> {
    return this.#failover(async (endpoint) => {
      const call = async (retried: boolean): Promise<T> => {
        if (this.#o.auth && this.#token === null) await this.#authenticate(endpoint);
        try {
          const bytes = await this.#grpcUnary(endpoint, path, message, timeoutMs ?? this.#o.requestTimeoutMs ?? 5000);
          const decoded = decode(bytes);
          if (decoded === null) throw new EtcdError(endpoint, `${path} answered with a message that does not decode (is this an etcd client URL?)`, null);
          return decoded;
        } catch (error) {
          if (!retried && this.#o.auth && error instanceof EtcdError && isAuthError(error)) {
            this.#token = null;
            return call(true);
          }
          throw error;
        }
      };
      return call(false);
    });
  }

  async #failover<T>(attemptOn: (endpoint: string) => Promise<T>): Promise<T> {
    const failures: string[] = [];
    let last: EtcdError | undefined;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      if (this.#closed) throw new EtcdError(this.endpoint, 'the client is closed', null);
      const endpoint = this.endpoint;
      try {
        return await attemptOn(endpoint);
      } catch (error) {
        if (!(error instanceof EtcdError)) throw error;
        if (error.grpcCode !== null && error.grpcCode !== GrpcCode.unavailable && error.grpcCode !== GrpcCode.deadlineExceeded) throw error;
        last = error;
        failures.push(error.message);
        this.#current = (this.#current + 1) % this.endpoints.length;
      }
    }
    if (this.endpoints.length === 1) throw last!;
    throw new EtcdError(this.endpoints.join(','), `no endpoint answered: ${failures.join('; ')}`, GrpcCode.unavailable);
  }

  /** Authenticates now when credentials are configured and no token is held (a watch needs one before it starts). */
  async ensureAuth(): Promise<void> {
    if (this.#o.auth && this.#token === null) await this.#authenticate(this.endpoint);
  }

  /** Forgets the token (etcd said it is invalid: expired, or the member restarted); the next call authenticates again. */
  resetAuth(): void {
    this.#token = null;
  }

  async #once(endpoint: string, path: string, body: Record<string, unknown>, timeoutMs: number, retried = false): Promise<Record<string, unknown>> {
    if (this.#o.auth && this.#token === null && path !== '/v3/auth/authenticate') await this.#authenticate(endpoint);
    try {
      return await this.#post(endpoint, path, body, timeoutMs);
    } catch (error) {
      // etcd's simple tokens expire (5 min idle by default) and die with the member: authenticate again, once.
      if (!retried && this.#o.auth && path !== '/v3/auth/authenticate' && error instanceof EtcdError && isAuthError(error)) {
        this.#token = null;
        return this.#once(endpoint, path, body, timeoutMs, true);
      }
      throw error;
    }
  }

  async #post(endpoint: string, path: string, body: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    const text = JSON.stringify(body);
    const r = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = this.#request(endpoint, path, text, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => { data += c.toString('utf8'); });
        res.on('end', () => {
          this.#open.delete(req);
          if (res.statusCode !== 200) return reject(errorFromBody(endpoint, res.statusCode ?? 0, data));
          try {
            resolve(JSON.parse(data) as Record<string, unknown>);
          } catch {
            reject(new EtcdError(endpoint, `${path} answered with something that is not JSON (is this an etcd client URL?)`, null));
          }
        });
        res.on('error', (error) => { this.#open.delete(req); reject(transportError(endpoint, error)); });
      }, (error) => { this.#open.delete(req); reject(transportError(endpoint, error)); }, timeoutMs);
    });
    return r;
  }

  async #authenticate(endpoint: string): Promise<void> {
    const auth = this.#o.auth!;
    let r: Record<string, unknown>;
    try {
      r = await this.#post(endpoint, '/v3/auth/authenticate', { name: auth.username, password: auth.password }, this.#o.requestTimeoutMs ?? 5000);
    } catch (error) {
      if (error instanceof EtcdError && error.grpcCode !== null) throw new EtcdError(endpoint, `authentication as ${auth.username} failed: ${error.message.replace(/^etcd \S+: /, '')} (check cluster.etcd.username and passwordFile)`, error.grpcCode);
      throw error;
    }
    if (typeof r['token'] !== 'string') throw new EtcdError(endpoint, `authentication as ${auth.username} returned no token (is auth enabled on etcd?)`, GrpcCode.unauthenticated);
    this.#token = r['token'];
  }

  /** The endpoint's HTTP/2 session, connecting when there is none (or it closed). */
  #session(endpoint: string): ClientHttp2Session {
    const open = this.#sessions.get(endpoint);
    if (open !== undefined && !open.closed && !open.destroyed) return open;
    const tls = this.#o.tls ?? {};
    const session = http2Connect(endpoint, endpoint.startsWith('https:') ? { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } : {});
    const dialMs = this.#o.dialTimeoutMs ?? 2000;
    const dial = setTimeout(() => session.destroy(new Error(`no connection within ${dialMs} ms`)), dialMs);
    session.once('connect', () => clearTimeout(dial));
    session.on('error', () => undefined); // each stream reports the failure it saw
    session.once('close', () => {
      clearTimeout(dial);
      if (this.#sessions.get(endpoint) === session) this.#sessions.delete(endpoint);
    });
    session.once('goaway', () => { if (this.#sessions.get(endpoint) === session) this.#sessions.delete(endpoint); });
    this.#sessions.set(endpoint, session);
    return session;
  }

  #grpcStream(endpoint: string, path: string, extra: Record<string, string> = {}): ClientHttp2Stream {
    const session = this.#session(endpoint);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...(this.#token !== null ? { token: this.#token } : {}), ...extra });
    this.#streams.add(stream);
    stream.once('close', () => this.#streams.delete(stream));
    return stream;
  }

  /** One gRPC unary call on one endpoint: the answer's message bytes, or an EtcdError with etcd's gRPC code. */
  #grpcUnary(endpoint: string, path: string, message: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error: EtcdError): void => { if (!settled) { settled = true; reject(error); } };
      let stream: ClientHttp2Stream;
      try {
        stream = this.#grpcStream(endpoint, path);
      } catch (error) {
        fail(transportError(endpoint, error as Error));
        return;
      }
      const frames = new GrpcFrames();
      let status: { code: number; message: string } | null = null;
      let httpStatus = 0;
      const timer = setTimeout(() => {
        // The session stays: a member that stopped answering (frozen, or partitioned with the
        // connection open) fails this call over to the next endpoint, and its watch, if any, is
        // judged by the stall check (state-log.ts); a member that died closes the connection.
        fail(new EtcdError(endpoint, `no answer within ${timeoutMs} ms`, null));
        stream.close(h2.NGHTTP2_CANCEL);
      }, timeoutMs);
      stream.on('response', (headers) => {
        httpStatus = Number(headers[':status'] ?? 0);
        status ??= grpcStatus(headers);
      });
      stream.on('trailers', (headers) => { status = grpcStatus(headers) ?? status; });
      stream.on('data', (chunk: Buffer) => frames.push(chunk));
      stream.on('error', (error) => fail(transportError(endpoint, error)));
      stream.on('close', () => {
        clearTimeout(timer);
        if (settled) return;
        if (status === null) return fail(new EtcdError(endpoint, `${path}: the stream closed without a gRPC status (HTTP ${httpStatus || 'none'}; is this an etcd client URL?)`, null));
        if (status.code !== 0) return fail(new EtcdError(endpoint, status.message || `gRPC status ${status.code}`, status.code));
        const answer = frames.next();
        if (answer === null) return fail(new EtcdError(endpoint, `${path}: the answer has no whole gRPC message`, null));
        settled = true;
        resolve(answer);
      });
      stream.end(grpcFrame(message));
    });
  }

  /** watch() over gRPC: one bidirectional stream, our side left open (closing it ends the watch in etcd). */
  #grpcWatch(key: string, rangeEnd: string, startRevision: number, onEvents: (events: WatchEvent[], revision: number) => void): Watch {
    const endpoint = this.endpoint;
    let cancelled = false;
    let stream: ClientHttp2Stream | null = null;
    const done = new Promise<EtcdError | null>((resolve) => {
      let settled = false;
      const finish = (e: EtcdError | null): void => {
        if (settled) return;
        settled = true;
        if (stream !== null && !stream.closed) stream.close(h2.NGHTTP2_CANCEL);
        resolve(cancelled ? null : e);
      };
      try {
        stream = this.#grpcStream(endpoint, '/etcdserverpb.Watch/Watch', { hasleader: 'true' });
      } catch (error) {
        finish(transportError(endpoint, error as Error));
        return;
      }
      const s = stream;
      const frames = new GrpcFrames();
      let status: { code: number; message: string } | null = null;
      s.on('response', (headers) => { status ??= grpcStatus(headers); });
      s.on('trailers', (headers) => { status = grpcStatus(headers) ?? status; });
      s.on('data', (chunk: Buffer) => {
        frames.push(chunk);
        for (let message = frames.next(); message !== null && !settled; message = frames.next()) {
          const r = decodeWatchResponse(message);
          if (r === null) return finish(new EtcdError(endpoint, 'watch stream sent a message that does not decode', null));
          if (r.canceled) {
            const compacted = r.compactRevision > 0;
            return finish(new EtcdError(endpoint, compacted ? `watch start revision ${startRevision} is compacted (oldest kept: ${r.compactRevision})` : `watch cancelled: ${r.cancelReason || 'no reason given'}`, compacted ? GrpcCode.outOfRange : null));
          }
          if (r.events.length === 0) continue;
          const events = r.events.map((e): WatchEvent => ({ type: e.type, kv: fromProto(e.kv) }));
          try {
            onEvents(events, events[events.length - 1]!.kv.modRevision);
          } catch (error) {
            return finish(new EtcdError(endpoint, `watch handler failed: ${error instanceof Error ? error.message : String(error)}`, null));
          }
        }
        if (frames.broken) finish(new EtcdError(endpoint, 'watch stream sent a frame that is not gRPC', null));
      });
      s.on('error', (error) => finish(transportError(endpoint, error)));
      s.on('close', () => {
        const st = status as { code: number; message: string } | null;
        finish(st !== null && st.code !== 0 ? new EtcdError(endpoint, st.message || `gRPC status ${st.code}`, st.code) : new EtcdError(endpoint, 'watch stream ended', GrpcCode.unavailable));
      });
      s.write(grpcFrame(encodeWatchCreate(encoder.encode(key), Buffer.from(rangeEnd, 'latin1'), startRevision)));
    });
    return {
      done,
      cancel: () => {
        cancelled = true;
        if (stream !== null && !stream.closed) stream.close(h2.NGHTTP2_CANCEL);
      },
    };
  }

  #request(endpoint: string, path: string, body: string, onResponse: (res: IncomingMessage) => void, onError: (error: Error) => void, timeoutMs: number | null, headers: Record<string, string> = {}, pooled = true): ClientRequest {
    const url = new URL(path, endpoint);
    const tls = this.#o.tls ?? {};
    const options = {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(this.#token !== null ? { authorization: this.#token } : {}), ...headers },
      ...(url.protocol === 'https:' ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
      // A watch holds its connection for as long as it runs: its own, outside the pool.
      agent: pooled ? (url.protocol === 'https:' ? this.#agents.https : this.#agents.http) : false,
    };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, onResponse);
    this.#open.add(req);
    const dialMs = this.#o.dialTimeoutMs ?? 2000;
    const dial = setTimeout(() => req.destroy(new Error(`no connection within ${dialMs} ms`)), dialMs);
    req.on('socket', (socket) => {
      const connected = (): void => clearTimeout(dial);
      if (!socket.connecting) connected();
      else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
    });
    let overall: NodeJS.Timeout | undefined;
    if (timeoutMs !== null) overall = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => { clearTimeout(dial); if (overall) clearTimeout(overall); });
    req.on('error', (error) => { clearTimeout(dial); if (overall) clearTimeout(overall); onError(error); });
    req.end(body);
    return req;
  }
}

/** etcd no longer holds the lease a request named (it expired, or was revoked). */
export function isLeaseNotFound(error: unknown): boolean {
  return error instanceof EtcdError && (error.grpcCode === GrpcCode.notFound || /requested lease not found/.test(error.message));
}

/** etcd refused the token (expired, unknown after a member restart) rather than the request. */
export function isAuthError(error: EtcdError): boolean {
  return /invalid auth token|auth token is not/.test(error.message) || (error.grpcCode === GrpcCode.unauthenticated && !/authentication failed/.test(error.message));
}

function headerRevision(r: Record<string, unknown>): number {
  return int((r['header'] as Record<string, unknown> | undefined)?.['revision']);
}

function transportError(endpoint: string, error: Error): EtcdError {
  // An HTTP/2 stream cancelled because its session failed: the session's error says what happened.
  const cause = (error as { cause?: unknown }).cause;
  if ((error as NodeJS.ErrnoException).code === 'ERR_HTTP2_STREAM_CANCEL' && cause instanceof Error) error = cause;
  const code = (error as NodeJS.ErrnoException).code;
  return new EtcdError(endpoint, code ? `${code} (${error.message})` : error.message, null);
}

function errorFromObject(endpoint: string, o: Record<string, unknown>): EtcdError {
  const inner = (o['error'] ?? o) as Record<string, unknown> | string;
  if (typeof inner === 'string') return new EtcdError(endpoint, inner, typeof o['code'] === 'number' ? o['code'] : null);
  const message = String(inner['message'] ?? inner['error'] ?? 'unknown error');
  return new EtcdError(endpoint, message, typeof inner['code'] === 'number' ? inner['code'] : typeof inner['grpc_code'] === 'number' ? inner['grpc_code'] : null);
}

function errorFromBody(endpoint: string, status: number, text: string): EtcdError {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    return errorFromObject(endpoint, o);
  } catch {
    return new EtcdError(endpoint, `HTTP ${status}: ${text.slice(0, 200)}`, status === 503 ? GrpcCode.unavailable : null);
  }
}

/** A gRPC length-prefixed message: 1 byte "compressed" (0), 4 bytes length, the bytes. */
function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Reassembles gRPC messages from the chunks a stream delivers. */
class GrpcFrames {
  #buffered: Buffer = Buffer.alloc(0);
  /** A compressed frame (never asked for) or one longer than etcd would send. */
  broken = false;

  push(chunk: Buffer): void {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
  }

  next(): Uint8Array | null {
    if (this.broken || this.#buffered.length < 5) return null;
    const length = this.#buffered.readUInt32BE(1);
    if (this.#buffered[0] !== 0 || length > 64 * 1024 * 1024) {
      this.broken = true;
      return null;
    }
    if (this.#buffered.length < 5 + length) return null;
    const message = this.#buffered.subarray(5, 5 + length);
    this.#buffered = this.#buffered.subarray(5 + length);
    return message;
  }
}

function grpcStatus(headers: IncomingHttpHeaders): { code: number; message: string } | null {
  const code = headers['grpc-status'];
  if (code === undefined) return null;
  let message = String(headers['grpc-message'] ?? '');
  try {
    message = decodeURIComponent(message);
  } catch {
    // not percent-encoded after all: keep it as sent
  }
  return { code: Number(code), message };
}

function fromProto(kv: ProtoKeyValue): KeyValue {
  return { key: Buffer.from(kv.key).toString('utf8'), value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease };
}

const RESULT = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;

function compareToProto(c: Compare): ProtoCompare {
  const base = { key: encoder.encode(c.key), result: RESULT[c.result] };
  if (c.target === 'CREATE') return { ...base, target: 'CREATE', createRevision: c.createRevision };
  if (c.target === 'MOD') return { ...base, target: 'MOD', modRevision: c.modRevision };
  return { ...base, target: 'VALUE', value: c.value };
}

function opToProto(op: TxnOp): ProtoOp {
  if ('put' in op) return { put: { key: encoder.encode(op.put.key), value: op.put.value, ...(op.put.lease ? { lease: op.put.lease } : {}) } };
  if ('range' in op) return { range: { key: encoder.encode(op.range.key), ...(op.range.rangeEnd !== undefined ? { rangeEnd: Buffer.from(op.range.rangeEnd, 'latin1') } : {}) } };
  return { deleteRange: { key: encoder.encode(op.deleteRange.key), ...(op.deleteRange.rangeEnd !== undefined ? { rangeEnd: Buffer.from(op.deleteRange.rangeEnd, 'latin1') } : {}) } };
}
