import { ExitCode, LanhaError } from '../lib/errors.js';
import type { CliCommand } from './cli.js';

// `lanctl demo`: what `npm start` runs. See demo.ts.

function portOption(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d{1,5}$/.test(value) || Number(value) < 1024 || Number(value) > max) {
    throw new LanhaError('usage', `--${name} ${String(value)}: give a port number 1024..${max}`, ExitCode.usage);
  }
  return Number(value);
}

export const demoCommand: CliCommand = {
  path: ['demo'],
  summary: 'show lanha working: as root a rack in network namespaces (two nodes, a witness, a VIP, failover and kill -9 with the gap per protocol), otherwise one node on loopback',
  usage: 'demo [--once] [--json] [--loopback] [--http-port N] [--base-port N]',
  options: { once: { type: 'boolean' }, json: { type: 'boolean' }, loopback: { type: 'boolean' }, 'http-port': { type: 'string' }, 'base-port': { type: 'string' } },
  optionHelp: [
    ['--loopback', 'as root too: one node on loopback instead of the namespace lab'],
    ['--once', 'exit after the summary instead of serving until Ctrl-C'],
    ['--json', 'print the steps and their results as JSON at the end'],
    ['--http-port N', 'the status pages\' port (default 7480)'],
    ['--base-port N', 'DHCP, DNS, TFTP and NTP listen on N+67, N+53, N+69, N+123 (default 10000)'],
  ],
  async run(args, io) {
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
  },
};
