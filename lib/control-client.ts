import { request, type IncomingMessage } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ExitCode, LanhaError, errorMessage } from './errors.js';

// The CLI side of the control API. A missing or refusing socket becomes a LanhaError that says the
// daemon is not running and how to start it (exit code 3).

export interface ControlReply {
  status: number;
  body: unknown;
}

/**
 * A remote daemon as `lanctl --remote` names it: `https://ADDR:PORT#DIR`, DIR (URI-encoded) holding
 * the operator's files: ca.pem (the cluster CA), operator.pem and operator.key (what
 * `lanctl init --tls --operator NAME --out DIR` writes). Anything else is a unix socket path.
 */
export function remoteTarget(address: string, port: number, tlsDir: string): string {
  return `https://${address}:${port}#${encodeURIComponent(tlsDir)}`;
}

interface Remote { url: URL; dir: string; where: string }

function parseRemote(target: string): Remote | null {
  if (!target.startsWith('https://')) return null;
  try {
    const url = new URL(target);
    return { url, dir: decodeURIComponent(url.hash.slice(1)), where: url.host };
  } catch {
    throw new LanhaError('usage', `${JSON.stringify(target.slice(0, 200))} is neither a control socket path nor a remote daemon: name a remote one with --remote ADDR[:PORT]`, ExitCode.usage);
  }
}

/** The operator's TLS files, read; a missing one is a LanhaError that says how to make them. */
function operatorFiles(dir: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (error) {
      throw new LanhaError('usage',
        `cannot read ${join(dir, name)} (${errorMessage(error)}): lanctl --remote needs an operator certificate. ` +
        'Make one where the cluster CA is: lanctl init --tls --config FILE --operator NAME --out DIR, copy DIR here and give it with --tls-dir DIR (or LANHA_TLS_DIR)',
        ExitCode.usage);
    }
  };
  return { ca: read('ca.pem'), cert: read('operator.pem'), key: read('operator.key') };
}

/** TLS failures a remote call can meet, as what failed and what to do. */
function remoteFailure(remote: Remote, error: NodeJS.ErrnoException): LanhaError {
  const code = error.code ?? '';
  const at = `the daemon at ${remote.where}`;
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT') {
    return new LanhaError('daemon-unreachable', `cannot reach ${at} (${code}): is its daemon running, with a control: block listening on ${remote.where}?`, ExitCode.daemonDown);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new LanhaError('daemon-unreachable', `${at} presented a certificate for another name (${error.message}): give --remote the member's address or name as its certificate has them`, ExitCode.daemonDown);
  }
  if (/CERT|SIGNATURE|ISSUER/.test(code)) {
    return new LanhaError('daemon-unreachable', `${at} presented a certificate that ${join(remote.dir, 'ca.pem')} did not sign (${code}): is it this cluster's CA?`, ExitCode.daemonDown);
  }
  if (code.startsWith('ERR_SSL') || code === 'ECONNRESET' || code === 'EPROTO') {
    return new LanhaError('daemon-unreachable', `${at} refused this operator certificate in the TLS handshake (${code || error.message}): was it made with this cluster's CA (lanctl init --tls --operator NAME)?`, ExitCode.daemonDown);
  }
  return new LanhaError('daemon-unreachable', `cannot talk to ${at}: ${error.message}`, ExitCode.daemonDown);
}

/** A reset this long after the request was sent is the daemon going away, not its connection cap. */
const LATE_CLOSE_MS = 1000;

/** "30 min", "10 s", "0.3 s". */
function formatWait(ms: number): string {
  return ms >= 120_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

export async function callDaemon(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<ControlReply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const remote = parseRemote(socketPath);
  const where = remote === null ? socketPath : remote.where;
  const headers = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
  const files = remote === null ? null : operatorFiles(remote.dir);
  // TLS only for --remote: a local command does not load it (start-up time on a small board).
  const httpsRequest = remote === null || files === null ? null : (await import('node:https')).request;
  return new Promise((resolve, reject) => {
    const onReply = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text === '' ? null : JSON.parse(text) });
        } catch {
          reject(new LanhaError('api-error', `the daemon at ${where} sent a reply that is not JSON`));
        }
      });
    };
    const req = remote === null || files === null || httpsRequest === null
      ? request({ socketPath, method, path, headers }, onReply)
      : httpsRequest({ host: remote.url.hostname, port: Number(remote.url.port), method, path, headers, ...files, minVersion: 'TLSv1.3', agent: false }, onReply);
    let timedOut = false;
    const startedMs = performance.now();
    req.setTimeout(timeoutMs, () => { timedOut = true; req.destroy(new Error('timeout')); });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (timedOut) {
        // Not "cannot talk": it took the request and is still at it (a long power run), or is stuck.
        reject(new LanhaError('daemon-unreachable', `the daemon at ${where} sent no reply within ${formatWait(timeoutMs)}: it may still be at work on the request, or be stuck (its log says which)`, ExitCode.daemonDown));
      } else if (remote !== null) {
        reject(remoteFailure(remote, error));
      } else if ((error.code === 'ENOENT' || error.code === 'ECONNREFUSED') && notASocket(socketPath) !== null) {
        reject(new LanhaError('daemon-unreachable', `${socketPath} is ${notASocket(socketPath)}, not a control socket: give the daemon's socket (node.controlSocket, /run/lanha/lanha.sock under systemd) with --socket PATH, or its config with --config FILE`, ExitCode.daemonDown));
      } else if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        reject(new LanhaError('daemon-unreachable',
          `lanha is not running (no daemon at ${socketPath}).\n` +
          'Start it with `systemctl start lanha` or `lanctl serve --config FILE`, or point at its socket with --socket PATH or --config FILE.',
          ExitCode.daemonDown));
      } else if (error.code === 'EACCES') {
        reject(new LanhaError('daemon-unreachable', permissionDenied(socketPath), ExitCode.daemonDown));
      } else if ((error.code === 'ECONNRESET' || error.code === 'EPIPE') && !req.reusedSocket && performance.now() - startedMs > LATE_CLOSE_MS) {
        // Long after the request went out: not the connection cap (that closes at accept), the daemon stopping.
        reject(new LanhaError('daemon-unreachable', `the daemon at ${socketPath} closed the connection while answering (${error.message}): did it stop or restart? Its log says`, ExitCode.daemonDown));
      } else if ((error.code === 'ECONNRESET' || error.code === 'EPIPE') && !req.reusedSocket) {
        // A fresh connection closed before any reply: the daemon closes connections past its cap at accept.
        reject(new LanhaError('daemon-unreachable',
          `the daemon at ${socketPath} closed the connection before replying (${error.message}): it may have its maximum of control connections open; ` +
          'retry, and look for "control.connections_full" in its log', ExitCode.daemonDown));
      } else {
        reject(new LanhaError('daemon-unreachable', `cannot talk to the daemon at ${socketPath}: ${error.message}`, ExitCode.daemonDown));
      }
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Calls the daemon and returns the body of a 2xx reply; anything else becomes a LanhaError. */
export async function callDaemonOk(socketPath: string, method: string, path: string, body?: unknown, timeoutMs?: number): Promise<unknown> {
  const reply = await callDaemon(socketPath, method, path, body, timeoutMs);
  if (reply.status >= 200 && reply.status < 300) return reply.body;
  const message = typeof reply.body === 'object' && reply.body !== null && 'error' in reply.body ? String((reply.body as { error: unknown }).error) : `HTTP ${reply.status}`;
  throw new LanhaError(reply.status === 404 ? 'not-found' : 'api-error', message);
}

/**
 * What to do about EACCES on the socket: the group that may use it (the socket's, 0660, or its
 * directory's when that is what refused: the unit's RuntimeDirectory is 0750), by name.
 */
export function permissionDenied(socketPath: string, groupFile = '/etc/group'): string {
  const gid = ((): number | null => {
    for (const path of [socketPath, dirname(socketPath)]) {
      try { return statSync(path).gid; } catch { /* not readable from here: try its directory */ }
    }
    return null;
  })();
  const group = gid === null ? null : groupName(gid, groupFile);
  const who = group === null ? (gid === null ? 'the daemon\'s group' : `group ${gid}`) : `group ${group}`;
  return `permission denied on ${socketPath}: run lanctl as root (sudo), or as a member of ${who}` +
    (group === null ? '' : ` (sudo usermod -aG ${group} $USER, then log in again)`);
}

function groupName(gid: number, groupFile: string): string | null {
  try {
    for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && Number(id) === gid) return name;
    }
  } catch { /* no group file */ }
  return null;
}

/** What is at `path` when it is there but no socket ("a regular file", "a directory"), else null. */
export function notASocket(path: string): string | null {
  try {
    const s = statSync(path);
    return s.isSocket() ? null : s.isDirectory() ? 'a directory' : s.isFile() ? 'a regular file' : 'not a socket';
  } catch {
    return null;
  }
}
