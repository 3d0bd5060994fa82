import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ExitCode, LanhaError } from '../lib/errors.js';
import type { CliCommand } from './cli.js';

// `lanctl init`: makes the cluster's shared key, the secret members prove themselves with
// (cluster.keyFile). Run it once, on one machine, then copy the same file to every member.

export const DEFAULT_KEY_FILE = '/etc/lanha/cluster.key';
const KEY_BYTES = 32;

export const initCommand: CliCommand = {
  path: ['init'],
  summary: 'make the cluster key (32 random bytes, mode 0600) that every member shares',
  usage: 'init [--config FILE] [--key FILE] [--force]',
  options: { config: { type: 'string', short: 'c' }, key: { type: 'string' }, force: { type: 'boolean' } },
  optionHelp: [
    ['-c, --config FILE', 'the site config: the key goes to its cluster.keyFile, and the members to copy it to are listed'],
    ['--key FILE', `where to write the key (default: the config's cluster.keyFile, else ${DEFAULT_KEY_FILE})`],
    ['--force', 'replace an existing key (every member must then get the new one)'],
  ],
  async run(args, io) {
    if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; give the key file with --key FILE`, ExitCode.usage);
    let members: Array<{ name: string; address: string }> = [];
    let keyFromConfig: string | undefined;
    const configFile = args.values['config'];
    if (typeof configFile === 'string') {
      const { ConfigError, loadConfig } = await import('../config/index.js');
      try {
        const config = loadConfig(configFile);
        keyFromConfig = config.cluster?.keyFile;
        members = (config.cluster?.members ?? []).filter((m) => m.name !== config.node.name);
      } catch (error) {
        if (error instanceof ConfigError) {
          io.err(`${error.message}\n`);
          return ExitCode.config;
        }
        throw error;
      }
    }
    const file = typeof args.values['key'] === 'string' ? args.values['key'] : keyFromConfig ?? DEFAULT_KEY_FILE;
    if (existsSync(file) && args.values['force'] !== true) {
      throw new LanhaError('exists',
        `${file} exists: it is the cluster's shared key, so copy it to the other members rather than making a new one (or replace it with --force, then copy it to every member)`,
        ExitCode.failure);
    }
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
      writeFileSync(file, `${randomBytes(KEY_BYTES).toString('hex')}\n`, { mode: 0o600 });
      chmodSync(file, 0o600); // an existing file keeps its mode through writeFileSync
      (await import('../cluster/raft/transport.js')).readKeyFile(file);
    } catch (error) {
      throw new LanhaError('io', `could not write ${file}: ${(error as Error).message} (run as root for /etc/lanha, or give --key FILE)`, ExitCode.failure);
    }
    io.out(`wrote ${file} (${KEY_BYTES} random bytes, hex, mode 0600)\n`);
    io.out(members.length === 0
      ? 'copy the same file, mode 0600, to every cluster member (cluster.keyFile in their configs)\n'
      : `copy it to the other members, keeping mode 0600:\n${members.map((m) => `  scp -p ${file} root@${m.address}:${file}    # ${m.name}\n`).join('')}`);
    return ExitCode.ok;
  },
};
