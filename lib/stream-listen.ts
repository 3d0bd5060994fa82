import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ListenOptions, Server } from 'node:net';
import type { Logger, LogLimiter } from './log.js';

// The two halves of a listening TCP or unix-socket server's life that every listener here shares:
// binding (the bind error is the caller's to report) and then staying up through failed accepts.

/** Binds `server`; resolves once it listens, rejects with the bind error. */
export function listenOn(server: Server, options: ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => { server.off('error', reject); resolve(); });
  });
}

export interface AcceptFailures {
  log: Logger;
  /** Counts one failed accept. */
  count: () => void;
  /** Log event name, e.g. "dns.tcp.accept_failed". */
  event: string;
  /** What listens, for the message: "DNS TCP on 10.0.0.2:53". */
  what: string;
  limiter: LogLimiter;
  nowMs: () => number;
}

/**
 * Keeps a bound server up through the errors it reports after listen: a failed accept (EMFILE or
 * ENFILE once libuv's reserve descriptor is gone too, ENOBUFS, ENOMEM) reaches the server as an
 * 'error' event, and an 'error' event nobody listens for is thrown, which would end the daemon. The
 * listening socket itself stays open and the next connection is accepted as usual. Counted always,
 * logged rate-limited (a descriptor shortage fails every accept until it ends).
 */
export function keepListening(server: Server, on: AcceptFailures): void {
  server.on('error', (err: NodeJS.ErrnoException) => {
    on.count();
    if (on.limiter.allow(on.event, on.nowMs())) {
      on.log.warn({ event: on.event, code: err.code, err }, `${on.what}: a connection could not be accepted (${err.code ?? err.message}); still listening${err.code === 'EMFILE' || err.code === 'ENFILE' ? ' (out of file descriptors: raise LimitNOFILE or find what holds them)' : ''}`);
    }
  });
}

/**
 * node:http server options for a header and a whole-request deadline that are enforced: Node checks
 * both only every connectionsCheckingInterval (30 s by default), so a client sending its headers a
 * byte at a time held a connection slot ~30 s whatever the timeout said. Checked within half the
 * header timeout here (0.1-1 s).
 */
export function httpDeadlines(headersTimeoutMs: number, requestTimeoutMs: number): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return {
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeoutMs / 2))),
  };
}

/**
 * The path and query of an HTTP request target, or null when it is not an origin-form path this
 * server answers: `new URL()` throws on some targets a client may send (`GET //` is a
 * scheme-relative URL with an empty host), and `//host/x` would parse with a host of its own. Never
 * throws: a request handler that threw on its input took the whole daemon down with it.
 */
export function requestTarget(target: string | undefined): { path: string; query: URLSearchParams } | null {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//')) return null;
  let url: URL;
  try {
    url = new URL(target, 'http://lanha.invalid');
  } catch {
    return null;
  }
  return url.host === 'lanha.invalid' ? { path: url.pathname, query: url.searchParams } : null;
}

/**
 * Runs an async request handler so that whatever it throws ends as a 500 for that request and a
 * log line, never as an unhandled rejection, which would end the process and every service in it.
 */
export function guardRequest(handle: () => Promise<void>, res: ServerResponse, onError: (error: unknown) => void): void {
  handle().catch((error: unknown) => {
    onError(error);
    if (!res.headersSent) {
      const body = JSON.stringify({ error: 'internal error while answering this request (see the daemon log)' });
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
    } else res.destroy();
  });
}

/**
 * Answers CONNECT (a request to open a tunnel, as to a proxy) with 405 and the methods this server
 * does take. Node hands a CONNECT to a 'connect' listener only, and with none it drops the
 * connection without a word, which a client reads as a broken server.
 */
export function refuseConnect(server: HttpServer, allow: string): void {
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nAllow: ${allow}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
}
