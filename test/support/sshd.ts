import { execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopChild, which, type LabHost } from './netns.js';

// A throwaway OpenSSH server for lab tests: `sshd -D -e -f` in a lab namespace with its own config,
// its own host keys and its own authorized_keys file, never the system's. `ip netns exec` already
// gives the process a private mount namespace (mounts there do not reach the host), and the shell
// mounts a tmpfs on /run/sshd (sshd's compiled-in privilege-separation directory) inside it.
// `UsePAM no` and `StrictModes no`, so scratch directories under /tmp work as they are.

const exec = promisify(execFile);

export const SSHD = '/usr/sbin/sshd';

/** Why the sshd helper cannot run here, or null. */
export function sshdUnavailable(): string | null {
  const missing = [['sshd', 'openssh-server'], ['ssh-keygen', 'openssh-client'], ['ssh', 'openssh-client']].filter(([tool]) => !which(tool!));
  return missing.length === 0 ? null : `missing ${missing.map(([t, p]) => `${t} (apt-get install ${p})`).join(', ')}`;
}

export interface KeyPair {
  /** Private key file (OpenSSH format, no passphrase). */
  privateFile: string;
  /** The public key line "ssh-ed25519 AAAA... comment". */
  publicLine: string;
}

/** Makes an ed25519 key pair at `file` (and `file`.pub). */
export async function makeKey(file: string, comment = 'lanha-test'): Promise<KeyPair> {
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  return { privateFile: file, publicLine: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** A known_hosts line pinning `hostKey` (a public key line) for `hosts` (addresses or names). */
export function knownHostsLine(hosts: readonly string[], hostKey: string, port = 22): string {
  const names = hosts.map((h) => (port === 22 ? h : `[${h}]:${port}`));
  return `${names.join(',')} ${hostKey.split(' ').slice(0, 2).join(' ')}\n`;
}

export interface SshdOptions {
  /** Scratch directory for config, keys and logs (created if missing). */
  dir: string;
  /** Address to listen on inside the namespace. */
  address: string;
  port?: number;
  /** Public key lines allowed to log in (any user the host knows; `root` is usual in tests). */
  authorizedKeys: readonly string[];
  /** Extra sshd_config lines (e.g. "Subsystem sftp internal-sftp", "ForceCommand ..."). */
  extraConfig?: readonly string[];
}

export interface Sshd {
  child: ChildProcess;
  address: string;
  port: number;
  /** The host's public key line ("ssh-ed25519 AAAA..."), for a pinned known_hosts. */
  hostKey: string;
  /** known_hosts content pinning this server's key for its address. */
  knownHosts: string;
  /** sshd's own log (-e: to stderr) so far. */
  logs(): string;
  stop(): Promise<void>;
}

/** Starts sshd in `host`'s namespace and resolves once it listens (bounded: 15 s). */
export async function startSshd(host: LabHost, options: SshdOptions): Promise<Sshd> {
  const port = options.port ?? 22;
  mkdirSync(options.dir, { recursive: true });
  chmodSync(options.dir, 0o755);
  const hostKeyFile = join(options.dir, 'ssh_host_ed25519_key');
  const hostKey = (await makeKey(hostKeyFile, 'lanha-test-host')).publicLine;
  const authorized = join(options.dir, 'authorized_keys');
  writeFileSync(authorized, options.authorizedKeys.map((k) => `${k}\n`).join(''), { mode: 0o600 });
  const config = join(options.dir, 'sshd_config');
  writeFileSync(config, [
    `ListenAddress ${options.address}`,
    `Port ${port}`,
    `HostKey ${hostKeyFile}`,
    `AuthorizedKeysFile ${authorized}`,
    'PidFile none',
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'LogLevel VERBOSE',
    'UseDNS no',
    ...(options.extraConfig ?? []),
    '',
  ].join('\n'));
  const script = `mkdir -p /run/sshd && mount -t tmpfs -o mode=0755 tmpfs /run/sshd && exec ${SSHD} -D -e -f ${config}`;
  const child = host.spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { void stopChild(child); reject(new Error(`sshd not listening within 15 s:\n${out}`)); }, 15_000);
    const check = (): void => {
      if (/Server listening on/.test(out)) { clearTimeout(timer); resolve(); }
    };
    child.stderr!.on('data', check);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`sshd exited (${code}) before listening:\n${out}`)); });
  });
  return {
    child,
    address: options.address,
    port,
    hostKey,
    knownHosts: knownHostsLine([options.address], hostKey, port),
    logs: () => out,
    stop: () => stopChild(child),
  };
}
