import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

// One pino root per process; services take a child with `service` bound. Every line carries an
// `event` key (a stable, grep-able name) and the message is for humans.
export type { Logger };

export type LogFormat = 'json' | 'text';

export interface LogOptions {
  level?: LevelWithSilent;
  node?: string;
  destination?: DestinationStream;
  /** 'text': one human line per event (a terminal); 'json' (journald, pipes). Default: LANHA_LOG_FORMAT, else json. */
  format?: LogFormat;
}

/** json unless asked for text: `--log-format`, else text on a terminal and json when piped (systemd's journal). */
export function chooseLogFormat(asked: string | undefined, isTty: boolean): LogFormat {
  if (asked === 'json' || asked === 'text') return asked;
  return isTty ? 'text' : 'json';
}

export function createLogger(options: LogOptions = {}): Logger {
  const base = options.node === undefined ? {} : { node: options.node };
  const config = {
    level: options.level ?? 'info',
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const format = options.format ?? (process.env['LANHA_LOG_FORMAT'] === 'text' ? 'text' : 'json');
  if (options.destination) return pino(config, options.destination);
  if (format === 'text') return pino(config, textDestination((line) => process.stdout.write(line)));
  return pino(config);
}

const SKIPPED = new Set(['level', 'time', 'node', 'service', 'msg', 'event']);
const COLOUR: Record<string, string> = { fatal: '\x1b[35m', error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[32m', debug: '\x1b[90m', trace: '\x1b[90m' };

/**
 * C0 controls, DEL and C1 controls (0x9b is a CSI on many terminals) as `\xNN`: a text line goes to
 * an operator's terminal, and facts can carry what a client sent (a TFTP name, a host name), where an
 * escape sequence could retitle, clear or drive the terminal. Sources escape such values too; this
 * is the one sink every text line passes.
 */
function visible(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function fact(value: unknown): string {
  if (typeof value === 'string') return visible(/[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value);
  if (value !== null && typeof value === 'object' && 'message' in value) return visible(JSON.stringify(String((value as { message: unknown }).message)));
  return visible(JSON.stringify(value) ?? String(value));
}

/** One JSON log line as a human line: time, level, service, message, then the facts as key=value. */
export function formatLogLine(json: string, colour = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const time = typeof o['time'] === 'string' ? o['time'].slice(11, 23) : '';
  const level = String(o['level'] ?? 'info');
  const levelText = level.toUpperCase().padEnd(5);
  const service = String(o['service'] ?? o['node'] ?? '').padEnd(7);
  const facts = Object.entries(o).filter(([k]) => !SKIPPED.has(k)).map(([k, v]) => `${k}=${fact(v)}`).join(' ');
  const lvl = colour ? `${COLOUR[level] ?? ''}${levelText}\x1b[0m` : levelText;
  return `${time} ${lvl} ${visible(service)} ${visible(String(o['msg'] ?? o['event'] ?? ''))}${facts === '' ? '' : `  ${facts}`}\n`;
}

/** A pino destination that writes human lines (coloured unless NO_COLOR is set). */
export function textDestination(write: (line: string) => void): DestinationStream {
  const colour = process.env['NO_COLOR'] === undefined && process.stdout.isTTY === true;
  return { write: (line: string) => { write(formatLogLine(line, colour)); } };
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
