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

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
