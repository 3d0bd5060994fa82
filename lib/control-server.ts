import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Logger } from './log.js';
import { LogLimiter } from './log.js';
import { LanhaError, errorMessage } from './errors.js';
import { checkOperator } from './remote-control.js';
import { SourceSlots } from './source-slots.js';
import type { ControlConfig } from './control-config.js';
import { guardRequest, httpDeadlines, keepListening, listenOn, requestTarget, refuseConnect } from './stream-listen.js';
import { byteLength, jsonInSlices } from './slices.js';

// The control API: HTTP + JSON on a unix socket (mode 0660), used by `lanctl`. Routes are keyed
// "METHOD /path"; a handler gets the query and the parsed JSON body and returns a status and body.
// A body holding a long array (every lease) is made into JSON text a slice at a time, the event loop
// turning between slices (jsonInSlices), so the daemon's DHCP answers are not held behind it.

export interface ApiRequest {
  query: URLSearchParams;
  body: unknown;
  /** Aborted when the client goes away before its reply (lanctl ended, Ctrl-C): long work may stop. */
  signal?: AbortSignal;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

export type ApiHandler = (request: ApiRequest) => Promise<ApiResponse> | ApiResponse;
export type ApiRoutes = Readonly<Record<string, ApiHandler>>;

const BODY_MAX = 1 << 20;
/**
 * Connections open at once. lanctl opens one per command; a script looping over lanctl, or a
 * monitoring agent, stays far below. Past it a connection is closed at accept, so a runaway client
 * (or one holding connections idle) cannot take the daemon's descriptors.
 */
export const CONTROL_MAX_CONNECTIONS = 64;
const CONTROL_IDLE_MS = 5_000;

/** A route's answers: how many, the last and the longest (ms), and how many took SLOW_ANSWER_MS or more. */
export interface AnswerTimes { count: number; lastMs: number; maxMs: number; slow: number }
/** An answer this slow is said (control.slow_answer, warn, rate-limited). */
const SLOW_ANSWER_MS = 1000;

export class ControlServer {
  readonly socketPath: string;
  #inode: number | null = null;
  #server: Server;
  #routes = new Map<string, ApiHandler>();
  /** API paths of services that do not run here, and the words that say so. */
  #off = new Map<string, string>();
  #log: Logger;

  #limiter = new LogLimiter();
  /** Connections with a request being served: slow handlers are not idle. */
  #serving = new Set<Socket>();
  /** Connections closed at accept because CONTROL_MAX_CONNECTIONS were open. */
  refused = 0;
  acceptFailed = 0;
  /** Remote clients refused: failed handshakes, certificates that are not an allowed operator's. */
  remoteRefused = 0;
  /**
   * The daemon's own answer time per route (from the request's arrival to the last byte handed to
   * the socket): what a slow `lanctl` costs the daemon, apart from the CLI's own start (a fresh
   * Node process, ~0.5 s of CPU, many seconds on a loaded machine). Routes are a fixed set.
   */
  #answers = new Map<string, AnswerTimes>();
  #remote: Server | null = null;

  /** The clock answer times are read on (monotonic ms; tests pass their own). */
  readonly #nowMs: () => number;

  constructor(socketPath: string, log: Logger, limits: { maxConnections?: number; idleMs?: number; nowMs?: () => number } = {}) {
    this.#nowMs = limits.nowMs ?? (() => performance.now());
    const maxConnections = limits.maxConnections ?? CONTROL_MAX_CONNECTIONS;
    const idleMs = limits.idleMs ?? CONTROL_IDLE_MS;
    this.socketPath = socketPath;
    this.#log = log;
    // A request's headers within 5 s and its whole body within 30 s (a reply may take longer: only
    // receiving the request is bounded); an idle keep-alive connection closes after 1 s.
    this.#server = createServer({ ...httpDeadlines(5_000, 30_000), keepAliveTimeout: 1000 }, (req, res) => this.#serve(req, res));
    this.#bound(this.#server, { maxConnections, idleMs, what: 'control socket', key: 'full' });
  }

  /** Runs a request under guardRequest: whatever the handler throws is a 500 and a log line. */
  #serve(req: IncomingMessage, res: ServerResponse): void {
    guardRequest(() => this.#handle(req, res), res, (error) => {
      this.#log.error({ event: 'control.request_failed', target: (req.url ?? '').slice(0, 200), err: errorMessage(error) }, 'control socket: answering a request failed');
    });
  }

  /** The bounds both listeners keep: connections at once, idle connections closed, CONNECT and malformed requests answered. */
  #bound(server: Server, o: { maxConnections: number; idleMs: number; what: string; key: string }): void {
    server.maxConnections = o.maxConnections;
    refuseConnect(server, 'GET, POST');
    // One silent for idleMs (5 s) with no request being served is closed. Node's header deadline
    // covers a connection that never sends a byte too (counted from accept, checked every
    // connectionsCheckingInterval; it answers 408 through 'clientError' below), so whichever of the
    // two fires first closes it; this one also covers the wait between keep-alive requests.
    // (With a 'timeout' listener on the server, Node leaves the socket to it.)
    server.setTimeout(o.idleMs, (socket: Socket) => { if (!this.#serving.has(socket)) socket.destroy(); });
    server.on('drop', () => {
      this.refused++;
      if (this.#limiter.allow(o.key, performance.now())) {
        this.#log.warn({ event: 'control.connections_full', listener: o.what, max: o.maxConnections, refused: this.refused },
          `${o.what}: ${o.maxConnections} connections open; closing new ones until some end`);
      }
    });
    server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      if (socket.writable) socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      else socket.destroy();
    });
  }

  /**
   * The same API over HTTPS with mutual TLS (the `control:` block), for `lanctl --remote`: this
   * member's certificate serves, and a client must present an operator certificate the cluster CA
   * signed (checkOperator). Writes are logged with the operator's name.
   */
  async listenRemote(config: ControlConfig, tls: { ca: string; cert: string; key: string }): Promise<string> {
    const server = createTlsServer({
      ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3',
      handshakeTimeout: 5_000, ...httpDeadlines(5_000, 30_000), keepAliveTimeout: 1000,
    }, (req, res) => {
      const who = checkOperator((req.socket as TLSSocket).getPeerX509Certificate(), config.operators);
      if (!who.ok) {
        this.remoteRefused++;
        if (this.#limiter.allow('remote-refused', performance.now())) {
          this.#log.warn({ event: 'control.remote_refused', from: req.socket.remoteAddress, why: who.why }, `remote control: a client was refused: ${who.why}`);
        }
        req.resume();
        const text = JSON.stringify({ error: `refused: ${who.why}` });
        res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
        res.end(text);
        return;
      }
      if (req.method !== 'GET') {
        this.#log.info({ event: 'control.remote_request', operator: who.operator, from: req.socket.remoteAddress, method: req.method, target: (req.url ?? '').slice(0, 200) },
          `remote control: ${who.operator} ${req.method} ${(req.url ?? '').slice(0, 200)}`);
      }
      this.#serve(req, res);
    });
    this.#bound(server, { maxConnections: config.maxConnections, idleMs: CONTROL_IDLE_MS, what: `remote control ${config.listen.host}:${config.listen.port}`, key: 'remote-full' });
    // Anyone on the LAN can open TCP connections here before any certificate is asked for: one host
    // holding them open (or stalling its handshakes) must not take every slot from the operators.
    const perSource = new SourceSlots(config.maxConnectionsPerSource);
    server.on('connection', (socket: Socket) => {
      if (perSource.take(socket)) return;
      this.remoteRefused++;
      if (this.#limiter.allow('remote-source', performance.now())) {
        this.#log.warn({ event: 'control.remote_source_limit', client: socket.remoteAddress, max: perSource.max },
          `remote control: ${socket.remoteAddress ?? '?'} has ${perSource.max} connections open; closing its new ones until some end`);
      }
      socket.destroy();
    });
    // A handshake that fails (no certificate, another CA's, a plain-HTTP client): counted, logged rate-limited.
    server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      this.remoteRefused++;
      socket.destroy();
      if (this.#limiter.allow('remote-handshake', performance.now())) {
        this.#log.warn({ event: 'control.remote_handshake_failed', from: socket.remoteAddress, err: error.message }, `remote control: a TLS handshake failed (${error.message})`);
      }
    });
    await listenOn(server, { host: config.listen.host, port: config.listen.port });
    keepListening(server, {
      log: this.#log, count: () => { this.acceptFailed++; }, event: 'control.accept_failed',
      what: `remote control ${config.listen.host}:${config.listen.port}`, limiter: this.#limiter, nowMs: () => performance.now(),
    });
    this.#remote = server;
    const address = server.address() as AddressInfo;
    return `${address.address}:${address.port}`;
  }

  #answered(key: string, ms: number): void {
    const a = this.#answers.get(key) ?? { count: 0, lastMs: 0, maxMs: 0, slow: 0 };
    a.count++;
    a.lastMs = Math.round(ms * 10) / 10;
    a.maxMs = Math.max(a.maxMs, a.lastMs);
    if (ms >= SLOW_ANSWER_MS) {
      a.slow++;
      if (this.#limiter.allow('slow-answer', performance.now())) {
        this.#log.warn({ event: 'control.slow_answer', route: key, ms: a.lastMs }, `control socket: answering ${key} took ${Math.round(ms)} ms (the event loop was busy or the handler slow)`);
      }
    }
    this.#answers.set(key, a);
  }

  /** For `lanctl status --json`: where the API listens, what it turned away, and its own answer times per route. */
  status(): { socket: string; remote: string | null; refusedAtCap: number; remoteRefused: number; acceptFailed: number; answers: Record<string, AnswerTimes> } {
    const a = this.#remote?.address();
    return {
      socket: this.socketPath,
      remote: a !== null && a !== undefined && typeof a === 'object' ? `${a.address}:${a.port}` : null,
      refusedAtCap: this.refused,
      remoteRefused: this.remoteRefused,
      acceptFailed: this.acceptFailed,
      answers: Object.fromEntries([...this.#answers].map(([k, a]) => [k, { ...a }])),
    };
  }

  route(key: string, handler: ApiHandler): void {
    if (!/^(GET|POST|DELETE|PUT) \/\S+$/.test(key)) throw new Error(`bad route key "${key}"`);
    if (this.#routes.has(key)) throw new Error(`route "${key}" registered twice`);
    this.#routes.set(key, handler);
  }

  routes(routes: ApiRoutes): void {
    for (const [key, handler] of Object.entries(routes)) this.route(key, handler);
  }

  /** Requests under `path` (`/v1/deploy`) that match no route are answered 404 with `why`, not "no such API route". */
  unavailable(path: string, why: string): void {
    this.#off.set(path, why);
  }

  #notFound(key: string, path: string): string {
    for (const [prefix, why] of this.#off) if (path === prefix || path.startsWith(`${prefix}/`)) return why;
    return `no such API route: ${key}`;
  }

  /** The GET handler for a path, for read-only mirrors of the API (the HTTP listener); never a write. */
  readRoute(path: string): ApiHandler | undefined {
    return this.#routes.get(`GET ${path}`);
  }

  /** Calls a GET route in-process, as `lanctl` would over the socket. */
  async read(path: string, query: URLSearchParams = new URLSearchParams()): Promise<ApiResponse> {
    const handler = this.readRoute(path);
    if (!handler) return { status: 404, body: { error: this.#notFound(`GET ${path}`, path) } };
    return handler({ query, body: undefined });
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true });
    // A socket file left by a crashed daemon blocks bind; remove it only if it is a socket and no
    // process answers on it. Removing a live daemon's socket left that daemon unreachable by lanctl
    // (failover, leases, status), for good once this one stopped and removed its own.
    let isSocket = false;
    try { isSocket = statSync(this.socketPath).isSocket(); } catch { /* absent */ }
    if (isSocket) {
      if (await answers(this.socketPath)) {
        throw new LanhaError('bind-failed', `control socket ${this.socketPath} is in use: another lanha daemon answers on it (lanctl status --socket ${this.socketPath} shows which); two daemons must not share node.controlSocket: stop that one, or give this one another node.controlSocket`);
      }
      rmSync(this.socketPath, { force: true });
    }
    await listenOn(this.#server, { path: this.socketPath });
    this.#inode = statSync(this.socketPath).ino;
    chmodSync(this.socketPath, 0o660);
    keepListening(this.#server, {
      log: this.#log, count: () => { this.acceptFailed++; }, event: 'control.accept_failed',
      what: `control socket ${this.socketPath}`, limiter: this.#limiter, nowMs: () => performance.now(),
    });
  }

  async close(): Promise<void> {
    const remote = this.#remote;
    if (remote !== null) {
      remote.closeAllConnections();
      await new Promise<void>((resolve) => remote.close(() => resolve()));
    }
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Only our own socket file: one a later daemon bound at this path after ours was removed is its.
    try {
      if (this.#inode !== null && statSync(this.socketPath).ino === this.#inode) rmSync(this.socketPath);
    } catch { /* already gone */ }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket;
    this.#serving.add(socket);
    res.once('close', () => this.#serving.delete(socket));
    const sendParts = (status: number, parts: readonly Buffer[]): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': byteLength(parts) });
      for (const part of parts) res.write(part);
      res.end();
    };
    const send = (status: number, body: unknown): void => { sendParts(status, [Buffer.from(JSON.stringify(body), 'utf8')]); };
    const target = requestTarget(req.url);
    if (target === null) {
      req.resume();
      send(400, { error: `the request target ${JSON.stringify((req.url ?? '').slice(0, 100))} is not a path` });
      return;
    }
    const key = `${req.method ?? 'GET'} ${target.path}`;
    const handler = this.#routes.get(key);
    if (!handler) {
      send(404, { error: this.#notFound(key, target.path) });
      return;
    }
    const arrived = this.#nowMs();
    res.once('finish', () => this.#answered(key, this.#nowMs() - arrived));
    let body: unknown = undefined;
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).byteLength;
        if (size > BODY_MAX) { send(413, { error: 'request body too large' }); return; }
        chunks.push(chunk as Buffer);
      }
      if (size > 0) body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(400, { error: 'request body is not valid JSON' });
      return;
    }
    const gone = new AbortController();
    res.once('close', () => { if (!res.writableFinished) gone.abort(); });
    try {
      const response = await handler({ query: target.query, body, signal: gone.signal });
      const parts = await jsonInSlices(response.body, () => gone.signal.aborted);
      if (parts !== null) sendParts(response.status, parts);
    } catch (error) {
      this.#log.error({ event: 'control.handler_failed', route: key, err: error }, 'control API handler failed');
      send(500, { error: `internal error in ${key}: ${errorMessage(error)}` });
    }
  }
}

/** Whether a process accepts connections on the unix socket at `path` (a refused or failed connect: no). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    const done = (live: boolean): void => { clearTimeout(timer); probe.destroy(); resolve(live); };
    // A daemon whose accept queue is full still holds the socket: only a refusal proves it stale.
    const timer = setTimeout(() => done(true), 2_000);
    probe.once('connect', () => done(true));
    probe.once('error', (error: NodeJS.ErrnoException) => done(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT'));
  });
}
