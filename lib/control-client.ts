import { request } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ExitCode, LanhaError } from './errors.js';

// The CLI side of the control API. A missing or refusing socket becomes a LanhaError that says the
// daemon is not running and how to start it (exit code 3).

export interface ControlReply {
  status: number;
  body: unknown;
}

export async function callDaemon(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<ControlReply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath,
      method,
      path,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text === '' ? null : JSON.parse(text) });
        } catch {
          reject(new LanhaError('api-error', `the daemon at ${socketPath} sent a reply that is not JSON`));
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        reject(new LanhaError('daemon-unreachable',
          `lanha is not running (no daemon at ${socketPath}).\n` +
          'Start it with `systemctl start lanha` or `lanctl serve --config FILE`, or point at its socket with --socket PATH or --config FILE.',
          ExitCode.daemonDown));
      } else if (error.code === 'EACCES') {
        reject(new LanhaError('daemon-unreachable', permissionDenied(socketPath), ExitCode.daemonDown));
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
