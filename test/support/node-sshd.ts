import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabHost } from './netns.js';
import { stopChild } from './netns.js';

// A throwaway OpenSSH server for lab tests: a compute node in the deploy tests, the LAN node that
// netbooting nodes pull from in the netboot test. Its own host key, config and
// authorized_keys under `dir`, run as `sshd -D -e -f <config>` in a private mount namespace (the one
// `ip netns exec` makes) with a tmpfs on /run (sshd's privilege-separation directory) and on /srv,
// where `root` (a host directory, or a small tmpfs) is mounted at /srv/root: what a deploy writes
// to /srv/root lands in `root`. Only the processes started here are stopped, by PID.

export interface TestSshd {
  host: LabHost;
  dir: string;
  /** The node's host key, "ssh-ed25519 AAAA...". */
  hostKey: string;
  /** Its other host keys by type (SshdOptions.moreHostKeyTypes). */
  moreHostKeys: Record<string, string>;
  child: ChildProcess;
  /** sshd's PID (ip netns exec and sh exec into it). */
  pid: number;
  /** What sshd logged so far (-e: to stderr). */
  log(): string;
  /** Kills sshd and every session process it forked (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** Host directory mounted at /srv/root inside the server's mount namespace. */
  root?: string;
  /**
   * Instead of `root`: a host directory mounted at /srv itself, so /srv/root is a plain directory
   * of it (made by the deploy, not a mount point) and what a deploy stages beside it lands here too.
   */
  srv?: string;
  /** Instead of `root`: a tmpfs of this size at /srv/root ("2m"), for disk-full tests. */
  tmpfsSize?: string;
  /** Public keys allowed to log in as root. */
  authorizedKeys: readonly string[];
  /** Reuse this host key file instead of making one (a restarted node keeps its key). */
  hostKeyFile?: string;
  /** More host keys (as a stock Debian sshd has), listed before the ed25519 one; their public lines in `moreHostKeys`. */
  moreHostKeyTypes?: ReadonlyArray<'ecdsa' | 'rsa'>;
  /** The PATH of every session (sshd's SetEnv), e.g. a directory of BusyBox applets: the node's userland. */
  path?: string;
  /** More host directories bound under /srv (target like "/srv/lanha"), e.g. a LAN member's state directory. */
  binds?: ReadonlyArray<{ source: string; target: string }>;
}

/** Makes an ed25519 key pair at `path` (and path.pub); returns the public key line. */
export function makeKey(path: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', path]);
  return readFileSync(`${path}.pub`, 'utf8').trim();
}

export async function startSshd(lab: Lab, host: LabHost, dir: string, options: SshdOptions): Promise<TestSshd> {
  mkdirSync(dir, { recursive: true });
  const keyFile = options.hostKeyFile ?? join(dir, 'ssh_host_ed25519_key');
  const hostKey = options.hostKeyFile ? readFileSync(`${keyFile}.pub`, 'utf8').trim() : makeKey(keyFile);
  const moreHostKeys: Record<string, string> = {};
  for (const type of options.moreHostKeyTypes ?? []) {
    const file = join(dir, `ssh_host_${type}_key`);
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', '', '-f', file]);
    moreHostKeys[type] = readFileSync(`${file}.pub`, 'utf8').trim();
  }
  writeFileSync(join(dir, 'authorized_keys'), options.authorizedKeys.join('\n') + '\n', { mode: 0o600 });
  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `ListenAddress ${host.address}`, 'Port 22', ...(options.moreHostKeyTypes ?? []).map((type) => `HostKey ${join(dir, `ssh_host_${type}_key`)}`), `HostKey ${keyFile}`, 'PidFile none', 'UsePAM no', 'StrictModes no',
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'Subsystem sftp internal-sftp', 'LogLevel VERBOSE', 'MaxStartups 64',
    // A session whose client vanished with its namespace (a deploy's idle ssh master when the lab is
    // torn down first) never hears a FIN; without keepalives it would live on and hold the log pipe.
    'ClientAliveInterval 3', 'ClientAliveCountMax 3', ...(options.path !== undefined ? [`SetEnv PATH=${options.path}`] : []), '',
  ].join('\n'));
  const mountRoot = options.tmpfsSize !== undefined
    ? `mount -t tmpfs -o size=${options.tmpfsSize},mode=755 tmpfs /srv/root`
    : options.root !== undefined ? `mount --bind '${options.root}' /srv/root` : 'true';
  const binds = (options.binds ?? []).map((b) => `mkdir -p '${b.target}'; mount --bind '${b.source}' '${b.target}'; `).join('');
  // Every session runs as root through root's login shell, and bash reads ~/.bashrc for a command
  // sshd runs: the host's dotfiles are not the node's. One that took a lock a killed session never
  // released (pyenv's rehash waits 60 s for it) made every remote command of every deploy test stall
  // past the 60 s step bound. Empty files are bound over them in this mount namespace only.
  const dotfiles = ['.bashrc', '.bash_profile', '.bash_login', '.profile', '.bash_logout'].map((f) => `/root/${f}`).join(' ');
  const hideDotfiles = `for f in ${dotfiles}; do if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi; done`;
  const srv = options.srv !== undefined ? `mount --bind '${options.srv}' /srv` : `mount -t tmpfs -o mode=755 tmpfs /srv; mkdir /srv/root; ${mountRoot}`;
  const script = `set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/sshd; chmod 755 /run/sshd; ${srv}; ${binds}${hideDotfiles}; exec /usr/sbin/sshd -D -e -f '${config}'`;
  const child = host.spawn('sh', ['-c', script]);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd in ${host.ns} did not start: ${log}`)), 10_000);
    const check = (): void => {
      if (/Server listening on/.test(log)) { clearTimeout(timer); resolve(); }
    };
    child.stderr!.on('data', check);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`sshd in ${host.ns} exited (${code}): ${log}`)); });
  });
  const pid = child.pid!;
  const sshd: TestSshd = {
    host, dir, hostKey, moreHostKeys, child, pid,
    log: () => log,
    async kill() {
      for (const p of descendants(pid)) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await new Promise<void>((resolve) => { if (child.exitCode !== null || child.signalCode !== null) resolve(); else child.once('exit', () => resolve()); });
    },
    async stop() {
      for (const p of descendants(pid)) { try { process.kill(p, 'SIGTERM'); } catch { /* gone */ } }
      await stopChild(child);
    },
  };
  return sshd;
}

/** PIDs of every process below `pid` (from /proc), deepest last. */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(name));
      parents.set(ppid, list);
    } catch { /* exited */ }
  }
  const out: number[] = [];
  const walk = (p: number): void => { for (const c of parents.get(p) ?? []) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}
