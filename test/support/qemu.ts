import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { which } from './netns.js';

// U-Boot in qemu-system-aarch64 (Debian u-boot-qemu, qemu-system-arm) driven over its serial
// console, for tests where firmware talks to lanha (TFTP here; DHCP can reuse it with a tap netdev).
// No KVM is needed: TCG boots U-Boot in a few seconds.

export const UBOOT_ARM64 = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';

/** Why U-Boot in qemu cannot run here, or null. */
export function ubootUnavailable(): string | null {
  if (!which('qemu-system-aarch64')) return 'qemu-system-aarch64 missing (apt-get install qemu-system-arm)';
  if (!existsSync(UBOOT_ARM64)) return `${UBOOT_ARM64} missing (apt-get install u-boot-qemu)`;
  return null;
}

/**
 * qemu arguments for U-Boot on the virt board. `netdev` is the -netdev value, e.g.
 * "user,id=n0" (slirp: the guest reaches the namespace it runs in through gateway 10.0.2.2) or
 * "tap,id=n0,ifname=lhXXtap,script=no,downscript=no" (a tap on a lab bridge).
 */
export function ubootArgs(options: { netdev: string; mac?: string; memoryMiB?: number }): string[] {
  const device = `virtio-net-device,netdev=${options.netdev.split('id=')[1]?.split(',')[0] ?? 'n0'}${options.mac ? `,mac=${options.mac}` : ''}`;
  return ['-M', 'virt', '-cpu', 'cortex-a57', '-m', String(options.memoryMiB ?? 256), '-bios', UBOOT_ARM64,
    '-nographic', '-monitor', 'none', '-no-reboot', '-netdev', options.netdev, '-device', device];
}

/** The U-Boot serial console of a running qemu: wait for the prompt, run commands, read their output. */
export class UbootConsole {
  readonly child: ChildProcess;
  #out = '';
  #waiters: Array<() => void> = [];

  constructor(child: ChildProcess) {
    this.child = child;
    const onData = (d: Buffer): void => {
      this.#out += d.toString('latin1');
      for (const w of this.#waiters.splice(0)) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }

  /** Everything the console printed so far. */
  get output(): string { return this.#out; }

  /** Waits until the output after `from` matches, or throws after `timeoutMs` with the output. */
  async waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#out.slice(from).match(pattern);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`qemu exited (${this.child.exitCode}) before ${pattern}; console:\n${this.#out.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} within ${timeoutMs} ms; console:\n${this.#out.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.#waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Stops autoboot and waits for the "=>" prompt. */
  async prompt(timeoutMs = 60_000): Promise<void> {
    await this.waitFor(/Hit any key to stop autoboot/, timeoutMs);
    this.child.stdin?.write('\n');
    await this.waitFor(/=> $/m, 10_000);
  }

  /** Runs one command line and returns what it printed up to the next prompt. */
  async run(command: string, timeoutMs = 60_000): Promise<string> {
    const from = this.#out.length;
    this.child.stdin?.write(`${command}\n`);
    await this.waitFor(/\n=> $/, timeoutMs, from);
    return this.#out.slice(from);
  }
}
