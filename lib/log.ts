import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

// One pino root per process; services take a child with `service` bound. Every line carries an
// `event` key (a stable, grep-able name) and the message is for humans.
export type { Logger };

export interface LogOptions {
  level?: LevelWithSilent;
  node?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LogOptions = {}): Logger {
  const base = options.node === undefined ? {} : { node: options.node };
  const config = {
    level: options.level ?? 'info',
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * Counts-then-logs: a debug line for the first `burst` events of a kind per window, then only the
 * counter moves. Hostile input must never flood the log.
 */
export class LogLimiter {
  #windowMs: number;
  #burst: number;
  #seen = new Map<string, { start: number; count: number }>();

  constructor(windowMs = 10_000, burst = 5) {
    this.#windowMs = windowMs;
    this.#burst = burst;
  }

  allow(kind: string, nowMs: number): boolean {
    let entry = this.#seen.get(kind);
    if (!entry || nowMs - entry.start >= this.#windowMs) {
      if (this.#seen.size > 1000) this.#seen.clear();
      entry = { start: nowMs, count: 0 };
      this.#seen.set(kind, entry);
    }
    entry.count++;
    return entry.count <= this.#burst;
  }
}
