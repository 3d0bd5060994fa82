import { execFile } from 'node:child_process';
import { formatIpv4 } from '../../lib/ipv4.js';
import type { VipConfig } from './config.js';

// The VIP's commands to the kernel: `ip addr replace|del` and `arping -U`, always through execFile
// with an argument list (never a shell). Shared by the service (server.ts) and `lanctl vip release`,
// which systemd runs before the daemon starts and after it stops.

export interface CommandResult {
  code: number;
  stderr: string;
}

/** Runs a program with arguments; tests inject a recorder. */
export type CommandRunner = (program: string, args: readonly string[]) => Promise<CommandResult>;

export const execRunner: CommandRunner = (program, args) => new Promise((resolve) => {
  execFile(program, [...args], { timeout: 5000 }, (error, _stdout, stderr) => {
    if (error === null) { resolve({ code: 0, stderr }); return; }
    const code = typeof error.code === 'number' ? error.code : 127;
    resolve({ code, stderr: stderr !== '' ? stderr : error.message });
  });
});

/** "10.20.0.1/24" */
export function vipCidr(config: VipConfig): string {
  return `${formatIpv4(config.address.address)}/${config.address.prefixLength}`;
}

export function vipAddress(config: VipConfig): string {
  return formatIpv4(config.address.address);
}

/** Adds or refreshes the address with a kernel lifetime: the kernel deletes it if we stop renewing. */
export function replaceArgs(config: VipConfig, lifetimeS: number): string[] {
  return ['addr', 'replace', vipCidr(config), 'dev', config.interface, 'valid_lft', String(lifetimeS), 'preferred_lft', String(lifetimeS)];
}

export function deleteArgs(config: VipConfig): string[] {
  return ['addr', 'del', vipCidr(config), 'dev', config.interface];
}

/** One unsolicited (gratuitous) ARP: neighbours update their caches to this node's MAC. */
export function garpArgs(config: VipConfig): string[] {
  return ['-U', '-c', '1', '-I', config.interface, vipAddress(config)];
}

export type ReleaseOutcome = 'released' | 'absent';

/** `ip addr del`, idempotent: an address that is not there (any more) is not an error. */
export async function releaseAddress(config: VipConfig, run: CommandRunner = execRunner): Promise<ReleaseOutcome> {
  return releaseOutcome(config, await run('ip', deleteArgs(config)));
}

/** What an `ip addr del` of the VIP (this process's or the guard's) came to; throws on a real failure. */
export function releaseOutcome(config: VipConfig, r: { code: number; stderr: string }): ReleaseOutcome {
  if (r.code === 0) return 'released';
  // iproute2 says "Cannot assign requested address" (older) or "Address not found" (newer).
  if (/Cannot assign requested address|Address not found/i.test(r.stderr)) return 'absent';
  throw new Error(`ip ${deleteArgs(config).join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}
