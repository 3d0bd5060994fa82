import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { networkInterfaces, userInfo } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { LanhaConfig } from './index.js';
import { formatIpv4 } from '../lib/ipv4.js';

// What a valid config names on the machine that runs it: the directories TFTP and boot serve, the
// cluster key, the interfaces DHCP and the VIP use. `lanctl config check` asks these on the
// machine it runs on and `serve` before it opens anything, so a missing directory or key is named
// by its key path and value, not met later as a bare ENOENT. The machine comes in as a HostView.

export interface HostView {
  /** 'dir', 'file', 'other', or the errno code (ENOENT, EACCES, ...) when it cannot be seen. */
  kind(path: string): 'dir' | 'file' | 'other' | string;
  /** Whether this process may read `path` (and, for a directory, enter it). */
  readable(path: string, dir: boolean): boolean;
  /** The network interfaces here, by name. */
  interfaces(): string[];
  /** The IPv4 addresses of this machine, dotted. */
  addresses(): string[];
  /** The user this process runs as, for messages. */
  user(): string;
  /** A relative path as it resolves here (from the directory lanctl runs in). */
  absolute(path: string): string;
}

export interface HostProblem {
  /** `key.path: "value" ...: what to do` */
  message: string;
  /** A network interface: it may appear later (a USB link, a bridge made after start), so serve retries it (exit 1). */
  mayAppear: boolean;
}

/** Every problem the config's paths and interfaces have on `host`, in key order. */
export function hostProblems(config: LanhaConfig, host: HostView): HostProblem[] {
  const problems: HostProblem[] = [];
  const directory = (key: string, path: string | undefined, what: string): void => {
    if (path === undefined) return;
    const kind = host.kind(path);
    const at = `${key}: ${shownPath(path, host)}`;
    if (kind === 'ENOENT' || kind === 'ENOTDIR') problems.push({ message: `${at} does not exist on this machine: create the directory ${what}, or correct the path`, mayAppear: false });
    else if (kind === 'file' || kind === 'other') problems.push({ message: `${at} is not a directory: give the directory ${what}`, mayAppear: false });
    else if (kind !== 'dir') problems.push({ message: `${at} cannot be read (${kind})`, mayAppear: false });
    else if (!host.readable(path, true)) problems.push({ message: `${at} cannot be read by user ${host.user()}: chmod o+rx it (or chgrp it to that user's group)`, mayAppear: false });
  };
  const cluster = config.cluster;
  if (cluster !== undefined && cluster.backend === 'raft' && cluster.keyFile !== undefined && cluster.members.length > 1) {
    const at = `cluster.keyFile: ${shownPath(cluster.keyFile, host)}`;
    const kind = host.kind(cluster.keyFile);
    if (kind === 'ENOENT' || kind === 'ENOTDIR') problems.push({ message: `${at} does not exist on this machine: make it on one member with \`lanctl init --config FILE\` and copy it (mode 0600) to the others`, mayAppear: false });
    else if (kind === 'dir' || kind === 'other') problems.push({ message: `${at} is not a file: give the key file \`lanctl init\` made`, mayAppear: false });
    else if (kind !== 'file') problems.push({ message: `${at} cannot be read (${kind})`, mayAppear: false });
    else if (!host.readable(cluster.keyFile, false)) problems.push({ message: `${at} cannot be read by user ${host.user()}: chown ${host.user()} ${cluster.keyFile} (keep mode 0600)`, mayAppear: false });
  }
  directory('tftp.root', config.tftp?.root, 'TFTP serves');
  if (config.boot?.root !== undefined && config.boot.root !== config.tftp?.root) directory('boot.root', config.boot.root, 'boot files are read from');
  const names = host.interfaces();
  const iface = (key: string, name: string | undefined): void => {
    if (name === undefined || names.includes(name)) return;
    problems.push({ message: `${key}: ${JSON.stringify(name)} is not an interface on this machine (it has ${names.length === 0 ? 'none' : [...names].sort().join(', ')})`, mayAppear: true });
  };
  iface('dhcp.interface', config.dhcp?.interface);
  iface('vip.interface', config.vip?.interface);
  return problems;
}

/** The path as written, and where it resolves when it is relative (the config was maybe read from another directory). */
function shownPath(path: string, host: HostView): string {
  const absolute = host.absolute(path);
  return absolute === path ? JSON.stringify(path) : `${JSON.stringify(path)} (${absolute}: relative paths are taken from the directory lanctl runs in)`;
}

/**
 * Whether `config` is this machine's own: its node.address (when given) is an address here. A site
 * config checked on another machine (a laptop, CI) has its host problems as warnings instead.
 */
export function isThisMachine(config: LanhaConfig, host: HostView): boolean {
  const address = config.node.address;
  return address === undefined || host.addresses().includes(formatIpv4(address));
}

/** The machine this process runs on. */
export const thisMachine: HostView = {
  kind(path) {
    try {
      const s = statSync(resolve(path));
      return s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
    } catch (error) {
      return (error as NodeJS.ErrnoException).code ?? 'EIO';
    }
  },
  readable(path, dir) {
    try {
      accessSync(resolve(path), dir ? constants.R_OK | constants.X_OK : constants.R_OK);
      return true;
    } catch {
      return false;
    }
  },
  interfaces() {
    try {
      return readdirSync('/sys/class/net'); // also the links without an address, which networkInterfaces() leaves out
    } catch {
      return Object.keys(networkInterfaces());
    }
  },
  addresses() {
    return Object.values(networkInterfaces()).flatMap((infos) => (infos ?? []).filter((i) => i.family === 'IPv4').map((i) => i.address));
  },
  absolute(path) {
    return isAbsolute(path) ? path : resolve(path);
  },
  user() {
    try {
      return userInfo().username;
    } catch {
      return String(process.getuid?.() ?? 'this user');
    }
  },
};
