import { userInfo } from 'node:os';
// Errors that reach an operator carry a stable code (for scripts) and a message that says what
// failed and what to do. Exit codes follow the CLI contract in the README.
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 2,
  daemonDown: 3,
} as const;

export type LanhaErrorCode =
  | 'config-invalid'
  | 'config-unreadable'
  | 'usage'
  | 'daemon-unreachable'
  | 'api-error'
  | 'bind-failed'
  | 'not-found'
  | 'not-leader'
  | 'unavailable'
  | 'exists'
  /** The state changed under a command that depended on it (etcd: an address's lease key moved on). */
  | 'conflict'
  | 'io';

export class LanhaError extends Error {
  override name = 'LanhaError';
  readonly code: LanhaErrorCode;
  readonly exitCode: number;

  constructor(code: LanhaErrorCode, message: string, exitCode: number = ExitCode.failure) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
  }
}

/**
 * An error whose cause the thrower has already said once (a shortage of descriptors or space, with
 * its own start and end lines): a caller that logs each failure counts it and logs it at debug,
 * instead of one warning per request for the same cause.
 */
export class AlreadySaidError extends LanhaError {
  override name = 'AlreadySaidError';
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * Why a file could not be opened, for an operator: the errno and what it means here. Permission
 * is the usual one on a node (the config or a key left mode 0600 root after `sudo cp`).
 */
export function unreadableFile(code: string): string {
  if (code === 'EACCES' || code === 'EPERM') {
    let user = 'this user';
    try { user = `user ${userInfo().username}`; } catch { /* no passwd entry: keep the generic word */ }
    return `${code}: ${user} may not read it; run as root (sudo), or give the file a group this user is in (chgrp lanha FILE; chmod g+r FILE)`;
  }
  if (code === 'ENOENT') return 'ENOENT: no such file';
  if (code === 'ENOTDIR') return 'ENOTDIR: a part of the path is not a directory';
  if (code === 'EISDIR') return 'EISDIR: a directory, not a file';
  return code;
}
