import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { SourceSlots } from '../../lib/source-slots.js';
import type { Socket } from 'node:net';
import type { Logger } from '../../lib/log.js';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import type { ApiResponse } from '../../lib/control-server.js';
import type { HttpListen } from './config.js';
import { LogLimiter } from '../../lib/log.js';
import { guardRequest, httpDeadlines, keepListening, listenOn, requestTarget, refuseConnect } from '../../lib/stream-listen.js';
import { byteLength, jsonInSlices } from '../../lib/slices.js';

// The read-only operator listener (node:http): pages, /metrics and the control API's GET routes as
// JSON. Only GET and HEAD exist here; writes stay on the unix control socket. Every reply carries a
// strict CSP (no scripts at all, styles from /style.css only) and never echoes the Host header or
// anything else from the request line into a header.

export interface HttpReply {
  status: number;
  contentType: string;
  /** Parts (an API answer's JSON made in slices) are written one after the other. */
  body: string | Buffer | readonly Buffer[];
  headers?: Record<string, string>;
}

/** A page or asset: gets the query (and, for prefix routes, the rest of the path). */
export type PageHandler = (query: URLSearchParams, rest: string) => Promise<HttpReply> | HttpReply;

export interface OpsHttpOptions {
  listen: HttpListen;
  maxConnections: number;
  /** Of those, open at once from one address (default 8). */
  maxConnectionsPerSource?: number;
  log: Logger;
  /** Exact paths ("/", "/leases") and prefixes ending in "/" ("/nodes/"). */
  pages: ReadonlyMap<string, PageHandler>;
  /** The control API's GET routes, for "/v1/..." paths. */
  readApi: (path: string, query: URLSearchParams) => Promise<ApiResponse>;
  /** Rendered for 404 and 400 replies to browsers. */
  errorPage?: (status: number, message: string) => string;
  requestTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** A connection silent this long with no request being served is closed (default 5 s). */
  idleMs?: number;
}

export const QUERY_MAX = 256;
const URL_MAX = 2048;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

const ALLOW = 'GET, HEAD';

export class OpsHttpServer {
  readonly #o: OpsHttpOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Connections with a request being served: a slow page or API read is not idle. */
  readonly #serving = new Set<Socket>();
  requests = 0;
  refused = 0;
  /** Connections closed at accept: their source held maxConnectionsPerSource already. */
  refusedPerSource = 0;
  readonly #perSource: SourceSlots;
  acceptFailed = 0;
  readonly #limiter = new LogLimiter();

  constructor(options: OpsHttpOptions) {
    this.#o = options;
    this.#server = createServer({
      ...httpDeadlines(options.headersTimeoutMs ?? 5_000, options.requestTimeoutMs ?? 10_000),
      keepAliveTimeout: 5_000,
      maxHeaderSize: 8192,
    }, (req, res) => {
      guardRequest(() => this.#handle(req, res), res, (error) => {
        options.log.error({ event: 'http.request_failed', target: (req.url ?? '').slice(0, 200), err: errorMessage(error) }, 'status HTTP: answering a request failed');
      });
    });
    this.#server.maxConnections = options.maxConnections;
    refuseConnect(this.#server, ALLOW);
    // Connections that send nothing must not hold their maxConnections slot (32 idle TCP connects
    // kept the pages and /metrics from everyone while they stayed open). One silent for idleMs with
    // no request being served is closed; a reply being written keeps its connection busy. Node's
    // headersTimeout also counts from accept for a connection that never sends a byte (answered
    // through 'clientError' below); whichever deadline fires first closes it.
    this.#server.setTimeout(options.idleMs ?? 5_000, (socket: Socket) => { if (!this.#serving.has(socket)) socket.destroy(); });
    this.#server.maxRequestsPerSocket = 100;
    this.#perSource = new SourceSlots(options.maxConnectionsPerSource ?? 8);
    this.#server.on('connection', (socket: Socket) => {
      // One host reconnecting in a loop, or holding connections open, must not take every slot from
      // the others (Prometheus, an operator's browser).
      if (!this.#perSource.take(socket)) {
        this.refusedPerSource++;
        const client = socket.remoteAddress ?? '';
        if (this.#limiter.allow('per-source', performance.now())) {
          options.log.warn({ event: 'http.source_limit', client, max: this.#perSource.max },
            `status HTTP: ${client} has ${this.#perSource.held(client)} connections open; closing its new ones until some end`);
        }
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('drop', () => { this.refused++; });
    keepListening(this.#server, {
      log: options.log, count: () => { this.acceptFailed++; }, event: 'http.accept_failed',
      what: `status HTTP on ${options.listen.host}:${options.listen.port}`, limiter: this.#limiter, nowMs: () => performance.now(),
    });
    this.#server.on('clientError', (_error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  get address(): string {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? `${a.address}:${a.port}` : `${this.#o.listen.host}:${this.#o.listen.port}`;
  }

  get port(): number {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a.port : this.#o.listen.port;
  }

  async listen(): Promise<void> {
    const { host, port } = this.#o.listen;
    await listenOn(this.#server, { port, host }).catch((error: unknown) => {
      throw new LanhaError('bind-failed', `cannot listen for HTTP on ${host}:${port}: ${errorMessage(error)} (set http.listen to a free address:port)`);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const socket = req.socket;
    this.#serving.add(socket);
    res.once('close', () => this.#serving.delete(socket));
    const head = req.method === 'HEAD';
    const send = (reply: HttpReply): void => {
      const parts = typeof reply.body === 'string' ? [Buffer.from(reply.body, 'utf8')] : Buffer.isBuffer(reply.body) ? [reply.body] : reply.body;
      res.writeHead(reply.status, { ...SECURITY_HEADERS, ...reply.headers, 'content-type': reply.contentType, 'content-length': byteLength(parts) });
      if (!head) for (const part of parts) res.write(part);
      res.end();
    };
    const target = req.url ?? '/';
    const isApi = target.startsWith('/v1/');
    const fail = (status: number, message: string, headers?: Record<string, string>): void => {
      const page = this.#o.errorPage;
      send(isApi || page === undefined
        ? { status, contentType: 'application/json', body: JSON.stringify({ error: message }), ...(headers ? { headers } : {}) }
        : { status, contentType: 'text/html; charset=utf-8', body: page(status, message), ...(headers ? { headers } : {}) });
    };
    if (target.length > URL_MAX) { fail(414, 'the request target is too long'); return; }
    const q = target.indexOf('?');
    const query = q < 0 ? '' : target.slice(q + 1);
    // Against a fixed base: the Host header is never read, so it can never be reflected.
    const url = requestTarget(target);
    if (url === null) { fail(400, 'the request target is not a path'); return; }
    const path = url.path;
    const known = isApi || this.#find(path) !== null;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      if (!known) { fail(404, `no page ${path}`); return; }
      fail(405, `${req.method ?? '?'} is not served here: this listener is read-only (changes go through lanctl on the control socket)`, { allow: ALLOW });
      return;
    }
    req.resume();
    if (query.length > QUERY_MAX) { fail(400, `the query is longer than ${QUERY_MAX} characters`); return; }
    try {
      if (isApi) {
        const reply = await this.#o.readApi(path, url.query);
        // In slices (the event loop turning between them) when it holds a long array: every lease.
        const body = await jsonInSlices(reply.body, () => res.destroyed);
        if (body !== null) send({ status: reply.status, contentType: 'application/json', body });
        return;
      }
      const found = this.#find(path);
      if (found === null) { fail(404, `no page ${path}`); return; }
      send(await found.handler(url.query, found.rest));
    } catch (error) {
      this.#o.log.error({ event: 'http.handler_failed', path, err: errorMessage(error) }, 'HTTP handler failed');
      fail(500, 'internal error (the daemon log has the details)');
    }
  }

  #find(path: string): { handler: PageHandler; rest: string } | null {
    const exact = this.#o.pages.get(path);
    if (exact) return { handler: exact, rest: '' };
    for (const [prefix, handler] of this.#o.pages) {
      if (prefix.endsWith('/') && prefix.length > 1 && path.startsWith(prefix) && path.length > prefix.length) return { handler, rest: path.slice(prefix.length) };
    }
    return null;
  }
}
