import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { LanhaError } from '../../lib/errors.js';

// A small etcd v3 client over etcd's JSON gRPC gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch,
// /v3/lease/*, /v3/maintenance/status; keys and values in base64, int64 as decimal strings): no
// dependency, only node:http(s). Requests go to the current endpoint; a connection failure,
// timeout or "unavailable" answer moves to the next one, and errors name the endpoint that failed.
// Not here: what the keys mean (state-log.ts).

export interface EtcdClientOptions {
  endpoints: readonly string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  dialTimeoutMs?: number;
  requestTimeoutMs?: number;
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
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  async range(key: string, o: { rangeEnd?: string; revision?: number; serializable?: boolean; countOnly?: boolean; keysOnly?: boolean; limit?: number; minModRevision?: number; maxModRevision?: number } = {}): Promise<{ kvs: KeyValue[]; revision: number; count: number }> {
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
    const failures: string[] = [];
    let last: EtcdError | undefined;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      if (this.#closed) throw new EtcdError(this.endpoint, 'the client is closed', null);
      const endpoint = this.endpoint;
      try {
        return await this.#once(endpoint, path, body, timeoutMs ?? this.#o.requestTimeoutMs ?? 5000);
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

/** etcd refused the token (expired, unknown after a member restart) rather than the request. */
export function isAuthError(error: EtcdError): boolean {
  return /invalid auth token|auth token is not/.test(error.message) || (error.grpcCode === GrpcCode.unauthenticated && !/authentication failed/.test(error.message));
}

function headerRevision(r: Record<string, unknown>): number {
  return int((r['header'] as Record<string, unknown> | undefined)?.['revision']);
}

function transportError(endpoint: string, error: Error): EtcdError {
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
