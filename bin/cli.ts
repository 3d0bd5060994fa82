import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ExitCode, LanhaError, errorMessage } from '../lib/errors.js';
import { controlSocketFrom } from '../lib/config-peek.js';
import { remoteTarget } from '../lib/control-client.js';
import { DEFAULT_REMOTE_PORT } from '../lib/remote-control.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { LanhaConfig } from '../config/index.js';

// A small command tree for `lanctl`: each command names its path ("config check"), its options
// (node:util parseArgs) and a run function that returns an exit code. `--help` works at every level.

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface CliCommand {
  path: readonly string[];
  summary: string;
  usage: string;
  options?: OptionSpec;
  /** Option lines for --help: [flag, text]. */
  optionHelp?: ReadonlyArray<readonly [string, string]>;
  /** The most positional arguments the command takes; more are a usage error (exit 2). Absent: the command checks them itself. */
  positionalsMax?: number;
  run: CommandRun;
}

/** What a command does once its arguments parsed: the exit code. */
export type CommandRun = (args: ParsedArgs, io: CliIo) => Promise<number>;

/**
 * A command's run that loads its module first (bin/commands.ts): the table holds every command's
 * help and options, and only the command asked for brings its code and imports.
 */
export function lazy<M extends Record<K, CommandRun>, K extends string>(load: () => Promise<M>, name: K): CommandRun {
  return async (args, io) => (await load())[name](args, io);
}

export const DEFAULT_CONFIG = '/etc/lanha/lanha.yaml';
export const DEFAULT_KEY_FILE = '/etc/lanha/cluster.key';
export const DEFAULT_TLS_DIR = '/etc/lanha/tls';

/** The config file a command was given with --config, else the default one. */
export function configFile(values: ParsedArgs['values']): string {
  return typeof values['config'] === 'string' ? values['config'] : DEFAULT_CONFIG;
}

/** Options every client command accepts to find the daemon. */
export const DAEMON_OPTIONS: OptionSpec = {
  config: { type: 'string', short: 'c' },
  socket: { type: 'string', short: 's' },
  remote: { type: 'string' },
  'tls-dir': { type: 'string' },
};

export const DAEMON_OPTION_HELP: ReadonlyArray<readonly [string, string]> = [
  ['-c, --config FILE', `the node's config, to find the control socket (default ${DEFAULT_CONFIG})`],
  ['-s, --socket PATH', 'the daemon\'s control socket, instead of reading the config'],
  ['--remote ADDR[:PORT]', `a daemon on another machine, over its control: listener (mutual TLS; port ${DEFAULT_REMOTE_PORT}); also LANHA_REMOTE`],
  ['--tls-dir DIR', 'with --remote: the operator\'s ca.pem, operator.pem, operator.key (default LANHA_TLS_DIR, else ~/.config/lanha)'],
];

const REMOTE = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

/**
 * The control socket from --socket, else from the config file; with --remote (or LANHA_REMOTE) a
 * remote daemon's address instead (lib/control-client.ts remoteTarget). Reads one key of the config
 * without validating the file (lib/config-peek.ts): the daemon validated it, and loading the
 * schemas would be most of a client command's start-up.
 */
export function resolveSocket(values: ParsedArgs['values'], env: NodeJS.ProcessEnv = process.env): string {
  const remote = typeof values['remote'] === 'string' ? values['remote'] : env['LANHA_REMOTE'] || undefined;
  if (remote !== undefined) {
    if (typeof values['socket'] === 'string') throw new LanhaError('usage', '--remote and --socket name two daemons: give one', ExitCode.usage);
    const m = REMOTE.exec(remote.trim());
    const port = m?.[2] === undefined ? DEFAULT_REMOTE_PORT : Number(m[2]);
    if (m === null || port < 1 || port > 65535) throw new LanhaError('usage', `--remote ${JSON.stringify(remote)} is not ADDR[:PORT] (like 10.0.0.2 or lan-a:${DEFAULT_REMOTE_PORT})`, ExitCode.usage);
    const dir = typeof values['tls-dir'] === 'string' ? values['tls-dir'] : env['LANHA_TLS_DIR'] || join(env['HOME'] ?? homedir(), '.config', 'lanha');
    return remoteTarget(m[1]!, port, dir);
  }
  if (typeof values['tls-dir'] === 'string') throw new LanhaError('usage', '--tls-dir is for --remote (the operator\'s certificate for a daemon on another machine)', ExitCode.usage);
  if (typeof values['socket'] === 'string') return values['socket'];
  return controlSocketFrom(configFile(values));
}

/**
 * The validated config, for the commands that act on it without a daemon (vip release, doctor
 * --offline, the ssh gate). The schemas load here, not at start-up; a bad file is a LanhaError
 * with one line per problem (exit 2).
 */
export async function loadValidConfig(file: string): Promise<LanhaConfig> {
  const { ConfigError, loadConfig } = await import('../config/index.js');
  try {
    return loadConfig(file);
  } catch (error) {
    if (error instanceof ConfigError) throw new LanhaError('config-invalid', error.message, ExitCode.config);
    throw error;
  }
}

export function helpText(program: string, command: CliCommand): string {
  const lines = [`Usage: ${program} ${command.usage}`, '', command.summary];
  if (command.optionHelp && command.optionHelp.length > 0) {
    lines.push('', 'Options:');
    const width = Math.max(...command.optionHelp.map(([f]) => f.length));
    for (const [flag, text] of command.optionHelp) lines.push(`  ${flag.padEnd(width)}  ${text}`);
    lines.push(`  ${'-h, --help'.padEnd(width)}  show this help`);
  }
  return lines.join('\n') + '\n';
}

/** Splits text at spaces into lines of at most `width` characters (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) { lines.push(line); line = word; } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** Widest usage kept on one line with its summary in a command list. */
const HELP_USAGE_WIDTH = 40;

export function groupHelp(program: string, prefix: readonly string[], commands: readonly CliCommand[], version: string): string {
  const below = commands.filter((c) => prefix.every((p, i) => c.path[i] === p) && c.path.length > prefix.length);
  const title = prefix.length === 0 ? `${program} ${version} — lanha LAN services: DHCP, DNS, TFTP, NTP and a floating IP, replicated with Raft` : `${program} ${prefix.join(' ')}`;
  const width = Math.max(...below.map((c) => c.usage.length));
  const lines = [title, '', 'Commands:'];
  // Usage and summary share a line while that fits a terminal; past it, the summary goes indented
  // under its usage so the list still reads at 80 columns.
  if (width <= HELP_USAGE_WIDTH) for (const c of below) lines.push(`  ${c.usage.padEnd(width)}  ${c.summary}`);
  else for (const c of below) lines.push(`  ${c.usage}`, ...wrap(c.summary, 80 - 6).map((l) => `      ${l}`));
  lines.push('', `Run \`${program} COMMAND --help\` for a command's options.`);
  if (prefix.length === 0) lines.push('Global: --help, --version.');
  return lines.join('\n') + '\n';
}

export async function runCli(program: string, argv: readonly string[], commands: readonly CliCommand[], version: string, io: CliIo): Promise<number> {
  // A program that is one command (`lanhad`: its path empty) has no command list: no arguments
  // run it, and --help is that command's.
  const single = commands.length === 1 && commands[0]!.path.length === 0;
  if (!single && (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help')) {
    io.out(groupHelp(program, [], commands, version));
    return argv.length === 0 ? ExitCode.usage : ExitCode.ok;
  }
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.out(`${program} ${version}\n`);
    return ExitCode.ok;
  }
  // The longest command path that prefixes argv.
  let command: CliCommand | undefined;
  for (const c of commands) {
    if (c.path.every((p, i) => argv[i] === p) && (!command || c.path.length > command.path.length)) command = c;
  }
  if (!command) {
    const prefix: string[] = [];
    for (const word of argv) {
      if (commands.some((c) => [...prefix, word].every((p, i) => c.path[i] === p))) prefix.push(word);
      else break;
    }
    const rest = argv.slice(prefix.length);
    if (prefix.length > 0 && (rest.length === 0 || rest[0] === '--help' || rest[0] === '-h')) {
      io.out(groupHelp(program, prefix, commands, version));
      return rest.length === 0 ? ExitCode.usage : ExitCode.ok;
    }
    if (prefix.length > 0 && rest[0]!.startsWith('-')) {
      // `lanctl deploy --config F`: options belong to a command of the group, which is missing.
      const words = [...new Set(commands.filter((c) => prefix.every((p, i) => c.path[i] === p) && c.path.length > prefix.length).map((c) => c.path[prefix.length]!))];
      io.err(`${program} ${prefix.join(' ')}: give a command before ${rest[0]}: ${words.map((w) => `${program} ${prefix.join(' ')} ${w}`).join(', ')}. Run \`${program} ${prefix.join(' ')} --help\` for what each does.\n`);
      return ExitCode.usage;
    }
    io.err(`${program}: unknown command "${argv.slice(0, prefix.length + 1).join(' ')}". Run \`${program} --help\` for the list.\n`);
    return ExitCode.usage;
  }
  const name = [program, ...command.path].join(' ');
  const rest = argv.slice(command.path.length);
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(helpText(program, command));
    return ExitCode.ok;
  }
  let parsed: ParsedArgs;
  try {
    const result = parseArgs({ args: [...rest], options: command.options ?? {}, allowPositionals: true, strict: true });
    parsed = { values: result.values as ParsedArgs['values'], positionals: result.positionals };
    const max = command.positionalsMax;
    if (max !== undefined && parsed.positionals.length > max) {
      throw new Error(`unexpected argument "${parsed.positionals[max]}"${max === 0 ? ` (${name} takes options only)` : ''}`);
    }
  } catch (error) {
    io.err(`${name}: ${errorMessage(error)}\nUsage: ${program} ${command.usage}\nRun \`${name} --help\` for its options.\n`);
    return ExitCode.usage;
  }
  try {
    return await command.run(parsed, io);
  } catch (error) {
    if (error instanceof LanhaError) {
      io.err(`${name}: ${error.message}\n`);
      return error.exitCode;
    }
    io.err(`${name}: unexpected error: ${errorMessage(error)}\n`);
    return ExitCode.failure;
  }
}

/**
 * A reader that went away (`lanctl status | head`, a closed terminal) ends a command's output, not
 * the command with a stack trace: the rest of its output has no one to read it, so a client command
 * exits with the code it would have had. A daemon (`serve`) goes on serving: its log lines have
 * nowhere to go until it is restarted with a reader, which is no reason to stop DHCP.
 */
export function quietOnClosedOutput(serving: boolean): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      if (!serving) process.exit(process.exitCode ?? 0);
    });
  }
}
