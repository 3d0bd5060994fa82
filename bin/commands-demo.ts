import { ExitCode, LanhaError } from '../lib/errors.js';
import type { CliIo, ParsedArgs } from './cli.js';

// `lanctl demo`: what `npm start` runs. See demo.ts.

function portOption(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d{1,5}$/.test(value) || Number(value) < 1024 || Number(value) > max) {
    throw new LanhaError('usage', `--${name} ${String(value)}: give a port number 1024..${max}`, ExitCode.usage);
  }
  return Number(value);
}

export async function demoRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"`, ExitCode.usage);
  const options = {
    once: args.values['once'] === true,
    json: args.values['json'] === true,
    httpPort: portOption(args.values['http-port'], 'http-port', 7480, 65535),
    basePort: portOption(args.values['base-port'], 'base-port', 10000, 65400),
  };
  const abort = new AbortController();
  const onSignal = (): void => { if (!abort.signal.aborted) { io.err('\nstopping the demo and removing what it made ...\n'); abort.abort(); } };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const root = typeof process.getuid === 'function' && process.getuid() === 0 && process.platform === 'linux';
    // Loaded on use: every other lanctl command starts faster without the daemon and lab code.
    if (root && args.values['loopback'] !== true) return await (await import('./demo-lab.js')).runLabDemo(options, io, abort.signal);
    return await (await import('./demo.js')).runLoopbackDemo(options, io, abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
