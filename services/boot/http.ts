import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { httpDeadlines, keepListening, listenOn, refuseConnect } from '../../lib/stream-listen.js';
import { checkName, printable } from '../tftp/paths.js';
import { openInRoot, type OpenRefusal } from '../tftp/files.js';
import type { BootHttpConfig } from './config.js';
import type { BootFileSource } from './provider.js';
import { SourceSlots } from '../../lib/source-slots.js';

// The read-only boot HTTP listener: iPXE fetches kernels and initrds here (much faster than TFTP
// for tens of MB), and the per-client boot files are served here too. GET and HEAD only, one
// byte range per request, paths confined to the boot root (realpath: no `..`, no symlink out),
// timeouts for slow clients and a connection cap. One server per address, like the UDP services,
// so the VIP can be added and removed as it moves. node:http only.

export interface BootHttpOptions {
  config: BootHttpConfig;
  addresses: readonly string[];
  /** realpath of the boot root. */
  rootReal: string;
  bootFiles: BootFileSource;
  log: Logger;
  clock: Clock;
  /** The MAC of a client's bound lease, for log lines and events of static files. */
  macOf?: (clientIp: string) => string | undefined;
  /** A file was sent whole or in part: the shell records a `node.boot` event. */
  served?: (event: ServedFile) => void;
}

export interface ServedFile {
  client: string;
  file: string;
  status: number;
  bytes: number;
  ms: number;
  mac?: string;
  rendered: boolean;
}

/** A single byte range of a file of `size` octets: [start, end] inclusive, or why not. */
export type RangeResult = { kind: 'all' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Parses a Range header (RFC 9110 §14.2): one `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges
 * or another unit are answered whole (a server may ignore Range); a range past the end is 416.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'all' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return { kind: 'all' };
  const [, first, last] = m;
  if (first === '' && last === '') return { kind: 'all' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: 'all' }; // RFC 9110: an invalid range-spec makes the header ignorable
  return { kind: 'range', start, end };
}

/** Out of file descriptors is no verdict on the file: 503 with Retry-After, and the client asks again. */
const refusalStatus: Record<OpenRefusal, number> = { 'not-found': 404, 'outside-root': 403, 'directory': 403, 'not-regular': 403, 'not-readable': 403, 'fd-exhausted': 503 };

export class BootHttpServer {
  readonly counters = new Counters();
  readonly #options: BootHttpOptions;
  readonly #limiter = new LogLimiter();
  #servers: Array<{ address: string; server: Server }> = [];
  readonly #sockets = new Set<Socket>();
  /** Open connections by remote address. */
  readonly #perSource: SourceSlots;

  constructor(options: BootHttpOptions) {
    this.#options = options;
    this.#perSource = new SourceSlots(options.config.maxConnectionsPerSource);
  }

  async start(): Promise<void> {
    try {
      for (const address of this.#options.addresses) await this.addAddress(address);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async addAddress(address: string): Promise<void> {
    if (this.#servers.some((s) => s.address === address)) return;
    const c = this.#options.config;
    const server = createServer({ ...httpDeadlines(c.headersTimeout, c.requestTimeout), keepAliveTimeout: 5000 }, (req, res) => {
      void this.#handle(req, res).catch((error: unknown) => {
        this.#options.log.error({ event: 'boot.http.failed', err: error }, 'boot HTTP request failed');
        if (!res.headersSent) this.#plain(res, 500, 'internal error\n');
        else res.destroy();
      });
    });
    // A connection silent both ways this long is a stalled reader: close it.
    server.setTimeout(c.idleTimeout);
    server.on('connection', (socket: Socket) => this.#admit(socket));
    refuseConnect(server, 'GET, HEAD');
    server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      this.counters.inc(timedOut ? 'boot.http.timed_out' : 'boot.http.bad_request');
      if (socket.writable) socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
    });
    await listenOn(server, { port: c.port, host: address });
    keepListening(server, {
      log: this.#options.log, count: () => this.counters.inc('boot.http.accept_failed'), event: 'boot.http.accept_failed',
      what: `boot HTTP on ${address}:${c.port}`, limiter: this.#limiter, nowMs: () => this.#options.clock.monotonicMs(),
    });
    this.#servers.push({ address, server });
  }

  /** Stops listening on an address (the VIP going away); downloads in progress finish, idle keep-alives close. */
  async removeAddress(address: string): Promise<void> {
    const entry = this.#servers.find((s) => s.address === address);
    if (entry === undefined) return;
    this.#servers = this.#servers.filter((s) => s !== entry);
    // Not awaited: close() calls back only when the last download ends, and the VIP must go now.
    entry.server.close();
    entry.server.closeIdleConnections();
  }

  /** The cap counts connections over every address; the per-source cap, those from one remote address. */
  #admit(socket: Socket): void {
    if (this.#sockets.size >= this.#options.config.maxConnections) {
      this.counters.inc('boot.http.busy');
      socket.destroy();
      return;
    }
    if (!this.#perSource.take(socket)) {
      const source = socket.remoteAddress ?? '';
      this.counters.inc('boot.http.busy_per_source');
      if (this.#limiter.allow('per-source', this.#options.clock.monotonicMs())) {
        this.#options.log.warn({ event: 'boot.http.source_limit', client: source, max: this.#options.config.maxConnectionsPerSource },
          `boot HTTP: ${source} has ${this.#perSource.held(source)} connections open; closing its new ones until some end`);
      }
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => { this.#sockets.delete(socket); });
  }

  listening(): string[] {
    return this.#servers.map(({ server }) => {
      const a = server.address();
      return typeof a === 'object' && a !== null ? `tcp ${a.address}:${a.port}` : 'tcp ?';
    });
  }

  /** The port actually bound (tests use port 0). */
  port(): number {
    const a = this.#servers[0]?.server.address();
    return typeof a === 'object' && a !== null ? a.port : this.#options.config.port;
  }

  async stop(): Promise<void> {
    const servers = this.#servers;
    this.#servers = [];
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all(servers.map(({ server }) => new Promise<void>((ok) => server.close(() => ok()))));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = this.#options.clock.monotonicMs();
    this.counters.inc('boot.http.requests');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      this.#plain(res, 405, 'read-only: GET and HEAD only\n');
      return;
    }
    const client = req.socket.remoteAddress ?? '';
    const named = this.#name(req.url ?? '');
    if (!named.ok) {
      this.counters.inc('boot.http.bad_path');
      this.#refused('boot.http.bad_path', client, named.reason, req.url ?? '');
      this.#plain(res, 400, 'bad path\n');
      return;
    }
    const name = named.path;
    const local = req.socket.localAddress ?? '';
    const boot = this.#options.bootFiles.lookup(name, client, local);
    if (boot.kind === 'error') {
      this.#plain(res, 500, 'boot file for this node could not be rendered (see the server log)\n');
      return;
    }
    if (boot.kind === 'file') {
      const type = boot.name.endsWith('.ipxe') || boot.name.includes('pxelinux') ? 'text/plain; charset=utf-8' : 'application/octet-stream';
      this.#sendBuffer(req, res, boot.bytes, type, (status, bytes) => this.#done(client, boot.name, status, bytes, started, boot.mac, true));
      return;
    }
    const opened = await openInRoot(this.#options.rootReal, name);
    if (!opened.ok) {
      this.counters.inc(`boot.http.refused.${opened.reason}`);
      this.#refused('boot.http.refused', client, opened.reason, name);
      if (opened.reason === 'fd-exhausted') res.setHeader('Retry-After', '1');
      this.#plain(res, refusalStatus[opened.reason], opened.reason === 'not-found' ? 'not found\n' : opened.reason === 'fd-exhausted' ? 'server busy (out of file descriptors), retry\n' : 'forbidden\n');
      return;
    }
    const file = opened.file;
    const range = parseRange(req.headers.range, file.size);
    if (range.kind === 'unsatisfiable') {
      await file.handle.close();
      res.setHeader('Content-Range', `bytes */${file.size}`);
      this.#plain(res, 416, 'range not satisfiable\n');
      return;
    }
    const [start, end] = range.kind === 'range' ? [range.start, range.end] : [0, file.size - 1];
    const status = range.kind === 'range' ? 206 : 200;
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Length', String(Math.max(0, end - start + 1)));
    if (status === 206) res.setHeader('Content-Range', `bytes ${start}-${end}/${file.size}`);
    if (req.method === 'HEAD' || file.size === 0) {
      await file.handle.close();
      res.end();
      return;
    }
    // Streamed from the open fd (the file checked above, not a path that could change meanwhile).
    const stream = file.handle.createReadStream({ start, end, highWaterMark: 256 * 1024 });
    let sent = 0;
    stream.on('data', (chunk) => { sent += chunk.length; });
    stream.on('error', (error) => {
      this.#options.log.warn({ event: 'boot.http.read_failed', file: name, err: error }, 'reading a boot file failed');
      res.destroy();
    });
    res.on('close', () => {
      stream.destroy();
      this.#done(client, name, res.writableFinished ? status : 499, sent, started, undefined, false);
    });
    stream.pipe(res);
  }

  /** The request path as a checked name below the root, or null. */
  /** The file a request's path names under the root, or why it names none. */
  #name(url: string): { ok: true; path: string } | { ok: false; reason: string } {
    const path = url.split('?')[0]!;
    if (!path.startsWith('/')) return { ok: false, reason: 'not-absolute' };
    let decoded: string;
    try {
      decoded = decodeURIComponent(path.slice(1));
    } catch {
      return { ok: false, reason: 'bad-percent-encoding' };
    }
    if (decoded.includes('\\')) return { ok: false, reason: 'backslash' };
    const checked = checkName(decoded);
    return checked.ok ? checked : { ok: false, reason: checked.reason };
  }

  /** A refused path (bad, missing, outside the root ...): a debug line, rate-limited per reason, the path escaped. */
  #refused(event: 'boot.http.bad_path' | 'boot.http.refused', client: string, reason: string, path: string): void {
    if (!this.#limiter.allow(`refused ${reason}`, this.#options.clock.monotonicMs())) return;
    this.#options.log.debug({ event, client, reason, path: printable(path) }, `boot HTTP: ${client} asked for ${printable(path)}: refused (${reason})`);
  }

  #sendBuffer(req: IncomingMessage, res: ServerResponse, bytes: Buffer, type: string, done: (status: number, bytes: number) => void): void {
    const range = parseRange(req.headers.range, bytes.length);
    if (range.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${bytes.length}`);
      this.#plain(res, 416, 'range not satisfiable\n');
      return;
    }
    const body = range.kind === 'range' ? bytes.subarray(range.start, range.end + 1) : bytes;
    res.statusCode = range.kind === 'range' ? 206 : 200;
    res.setHeader('Content-Type', type);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', String(body.length));
    if (range.kind === 'range') res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${bytes.length}`);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.on('close', () => done(res.writableFinished ? res.statusCode : 499, res.writableFinished ? body.length : 0));
    res.end(body);
  }

  #plain(res: ServerResponse, status: number, text: string): void {
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Length', String(Buffer.byteLength(text)));
    res.end(text);
  }

  #done(client: string, file: string, status: number, bytes: number, started: number, renderedFor: string | undefined, rendered: boolean): void {
    const mac = renderedFor ?? this.#options.macOf?.(client);
    const ms = Math.round(this.#options.clock.monotonicMs() - started);
    const ok = status === 200 || status === 206;
    this.counters.inc(ok ? 'boot.http.files_done' : 'boot.http.files_failed');
    if (ok) this.counters.inc('boot.http.bytes_sent', bytes);
    const line = { event: ok ? 'boot.http.done' : 'boot.http.failed', client, file, status, bytes, ms, rendered, ...(mac === undefined ? {} : { mac }) };
    if (ok) this.#options.log.info(line, 'boot file sent over HTTP');
    else if (this.#limiter.allow('failed', this.#options.clock.monotonicMs())) this.#options.log.warn(line, 'boot file over HTTP not completed');
    if (ok) this.#options.served?.({ client, file, status, bytes, ms, rendered, ...(mac === undefined ? {} : { mac }) });
  }

  status(): Record<string, unknown> {
    return { listening: this.listening(), connections: this.#sockets.size, counters: this.counters.toJSON() };
  }
}
