import { LanhaError } from './errors.js';

// Why a service could not take its address and port, in words an operator can act on. Node's own
// errors ("bind EADDRINUSE 127.0.0.1:53") name neither the service nor the cure, and a few
// services' wrappers named the service but not the cause. Pure: the daemon passes the error a
// service's start threw and gets a LanhaError back, or null when it was something else.

type BindCode = 'EADDRINUSE' | 'EADDRNOTAVAIL' | 'EACCES';

export interface BindFailure {
  code: BindCode;
  /** udp (dgram bind) or tcp (listen). */
  protocol: 'udp' | 'tcp';
  address: string;
  port: number;
}

const CODES: ReadonlySet<string> = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES']);
// "bind EADDRINUSE 127.0.0.1:53", "listen EADDRNOTAVAIL: address not available 10.0.0.9:8080",
// also inside a service's own wrapping message.
const TEXT = /\b(bind|listen) (EADDRINUSE|EADDRNOTAVAIL|EACCES)\b[^\n]*?\s\[?([0-9A-Fa-f.:]+?)\]?:(\d+)\b/;

/** The failed bind or listen in `error` (its own fields, its cause's, or its message), or null. */
export function findBindFailure(error: unknown): BindFailure | null {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const errno = e as NodeJS.ErrnoException & { address?: unknown; port?: unknown };
    if (CODES.has(errno.code ?? '') && (errno.syscall === 'bind' || errno.syscall === 'listen')
      && typeof errno.address === 'string' && typeof errno.port === 'number') {
      return { code: errno.code as BindCode, protocol: errno.syscall === 'bind' ? 'udp' : 'tcp', address: errno.address, port: errno.port };
    }
    const m = TEXT.exec(e.message);
    if (m !== null) return { code: m[2] as BindCode, protocol: m[1] === 'bind' ? 'udp' : 'tcp', address: m[3]!, port: Number(m[4]) };
  }
  return null;
}

/** What went wrong and what to do, for a service (`block`: its config block) that failed to bind. */
export function describeBindFailure(service: string, block: string, f: BindFailure): string {
  const what = `${service} cannot listen on ${f.protocol} ${f.address}:${f.port}`;
  switch (f.code) {
    case 'EADDRINUSE':
      return `${what}: another program already holds that port (find it: ss -l${f.protocol === 'udp' ? 'u' : 't'}np 'sport = :${f.port}'); stop it, or give ${block}: another port or address`;
    case 'EADDRNOTAVAIL':
      return `${what}: ${f.address} is not an address of this host (ip -br addr lists them); set node.address or ${block}'s listen addresses to one it has, or bring up the interface that carries it`;
    case 'EACCES':
      return `${what}: ports below 1024 need CAP_NET_BIND_SERVICE (systemd/lanha.service grants it; or run as root), or give ${block}: a port of 1024 or more`;
  }
}

/** `error` as a LanhaError naming the service, address, port, cause and fix; null if it is no bind failure. */
export function bindError(service: string, block: string, error: unknown): LanhaError | null {
  const f = findBindFailure(error);
  return f === null ? null : new LanhaError('bind-failed', describeBindFailure(service, block, f));
}
