import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchConfig } from './daemon.js';
import { requireLab, which, type LabHost } from './netns.js';

// Firmware in qemu driven over its serial console, for tests where a real boot loader talks to
// lanha: U-Boot in qemu-system-aarch64 (Debian u-boot-qemu, qemu-system-arm), iPXE as the PXE
// option ROM of a NIC under SeaBIOS in qemu-system-x86_64 (Debian ipxe-qemu, qemu-system-x86) and
// OVMF, UEFI with its own PXE client, in qemu-system-x86_64 (Debian ovmf), and AAVMF, the same EDK2
// for arm64, in qemu-system-aarch64 (Debian qemu-efi-aarch64). No KVM is needed: TCG boots U-Boot
// and iPXE in a few seconds, OVMF and AAVMF in about 20.

export const UBOOT_ARM64 = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';
/** U-Boot for 32-bit ARM (qemu_arm, armv7): DHCP option 93 = 21, vendor class U-Boot.armv7. */
export const UBOOT_ARM = '/usr/lib/u-boot/qemu_arm/u-boot.bin';
/** iPXE built as the PXE ROM of qemu's e1000 (8086:100e). */
export const IPXE_E1000_ROM = '/usr/lib/ipxe/qemu/pxe-e1000.rom';
/** iPXE's UNDI loader, what a PXE ROM chain-loads (Debian ipxe). */
export const IPXE_UNDIONLY = '/usr/lib/ipxe/undionly.kpxe';
/** iPXE as a UEFI application, what UEFI PXE chain-loads (Debian ipxe). */
export const IPXE_EFI = '/usr/lib/ipxe/ipxe.efi';
/** OVMF, UEFI for x86-64 qemu (Debian ovmf): the code (read-only) and the variable store template. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
/** AAVMF, UEFI for arm64 qemu (Debian qemu-efi-aarch64, no Secure Boot): code and variable store template. */
export const AAVMF_CODE = '/usr/share/AAVMF/AAVMF_CODE.fd';
export const AAVMF_VARS = '/usr/share/AAVMF/AAVMF_VARS.fd';
/**
 * GRUB for arm64 UEFI built for netboot (Debian grub-efi-arm64-signed, an arm64 package: needs
 * `dpkg --add-architecture arm64`). Debian ships no arm64 iPXE; this is the arm64 EFI binary it
 * does ship. Started by UEFI PXE, it reads `grub/grub.cfg` from the TFTP server it came from.
 */
export const GRUBNET_AA64 = '/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed';

interface TapLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  pass: (...args: any[]) => unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  fail: (...args: any[]) => unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  skip: (...args: any[]) => unknown;
}

/**
 * For the top of a firmware-in-qemu test: a lab (root, `labTools`), then whatever `unavailable`
 * names missing (qemu, the firmware files, fixtures). True when the test can run; otherwise a loud
 * SKIPPED line naming `what` and the missing piece, or a failure under CI where all must be there.
 */
export function requireQemu(t: TapLike, what: string, unavailable: () => string | null, labTools: readonly string[] = []): boolean {
  if (!requireLab(t, labTools)) return false;
  const missing = unavailable();
  if (missing === null) return true;
  if (process.env['CI'] === 'true') t.fail(`CI must run this test but cannot: ${missing}`);
  else {
    process.stderr.write(`\n*** SKIPPED ${what}: ${missing}\n`);
    t.pass(`SKIPPED: ${missing}`);
  }
  return false;
}

/**
 * A scratch directory for a firmware test's daemon (removed at teardown) that the namespace's
 * processes may enter (0755), and the path of its not yet created `root` for the served files.
 */
export function firmwareScratch(t: { teardown(fn: () => void): void }): { dir: string; file: string; root: string } {
  const scratch = scratchConfig('');
  t.teardown(scratch.cleanup);
  chmodSync(scratch.dir, 0o755);
  return { dir: scratch.dir, file: scratch.file, root: join(scratch.dir, 'root') };
}

/**
 * The x86 profile the iPXE and UEFI boot tests serve: its "kernel" is an iPXE script that prints
 * LANHA-KERNEL-RAN and drops to the shell (iPXE boots scripts like any image), so the whole
 * built-in boot.ipxe runs in a real iPXE. Writes kernel and initrd under `root`/x86 and returns
 * them with the config blocks (`tftp:`, `profiles:`, `boot:` with the HTTP listener on 8080).
 */
export function x86BootProfile(root: string): { kernel: string; initrd: string; yaml: string } {
  const kernel = '#!ipxe\necho LANHA-KERNEL-RAN\nshell\n';
  const initrd = 'initrd bytes\n'.repeat(1000);
  mkdirSync(join(root, 'x86'), { recursive: true });
  writeFileSync(join(root, 'x86', 'next.ipxe'), kernel, { mode: 0o644 });
  writeFileSync(join(root, 'x86', 'initrd.img'), initrd, { mode: 0o644 });
  const yaml = `tftp:
  root: ${root}
profiles:
  x86:
    arch: x86_64
    kernel: x86/next.ipxe
    initrd: x86/initrd.img
    bootargs: "console=ttyS0 lanha.node={{name}}"
boot:
  defaultProfile: x86
  http: { port: 8080 }
`;
  return { kernel, initrd, yaml };
}

/** The -netdev value for a tap that already exists (see addTap): qemu opens it, runs no script. */
export function tapNetdev(tap: string): string {
  return `tap,id=n0,ifname=${tap},script=no,downscript=no`;
}

/**
 * Makes a tap in the host's namespace with the server's addresses, up, before the daemon binds
 * them and before qemu opens it. With `defaultVia`, the host's default route goes through that
 * address on the tap, as on a LAN: then lanha's replies to clients without an address go to
 * 255.255.255.255, the only broadcast UEFI (EDK2) PXE takes.
 */
export async function addTap(host: LabHost, tap: string, addresses: readonly string[], defaultVia?: string): Promise<void> {
  const route = defaultVia === undefined ? [] : [['route', 'add', 'default', 'via', defaultVia, 'dev', tap, 'onlink']];
  for (const args of [['tuntap', 'add', 'dev', tap, 'mode', 'tap'], ...addresses.map((a) => ['addr', 'add', a, 'dev', tap]), ['link', 'set', tap, 'up'], ...route]) {
    const r = await host.exec('ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  }
}

/** The qemu of each U-Boot build. */
export const UBOOT_QEMU = { arm64: 'qemu-system-aarch64', arm: 'qemu-system-arm' } as const;

/** Why U-Boot (arm64, or 32-bit `arm`) in qemu cannot run here, or null. */
export function ubootUnavailable(arch: 'arm64' | 'arm' = 'arm64'): string | null {
  if (!which(UBOOT_QEMU[arch])) return `${UBOOT_QEMU[arch]} missing (apt-get install qemu-system-arm)`;
  const bios = arch === 'arm64' ? UBOOT_ARM64 : UBOOT_ARM;
  if (!existsSync(bios)) return `${bios} missing (apt-get install u-boot-qemu)`;
  return null;
}

/** Why iPXE in qemu-system-x86_64 cannot run here, or null. */
export function ipxeUnavailable(): string | null {
  if (!which('qemu-system-x86_64')) return 'qemu-system-x86_64 missing (apt-get install qemu-system-x86)';
  if (!existsSync(IPXE_E1000_ROM)) return `${IPXE_E1000_ROM} missing (apt-get install ipxe-qemu)`;
  if (!existsSync(IPXE_UNDIONLY)) return `${IPXE_UNDIONLY} missing (apt-get install ipxe)`;
  return null;
}

/** Why OVMF in qemu-system-x86_64 cannot run here, or null. */
export function ovmfUnavailable(): string | null {
  if (!which('qemu-system-x86_64')) return 'qemu-system-x86_64 missing (apt-get install qemu-system-x86)';
  for (const file of [OVMF_CODE, OVMF_VARS]) if (!existsSync(file)) return `${file} missing (apt-get install ovmf)`;
  if (!existsSync(IPXE_EFI)) return `${IPXE_EFI} missing (apt-get install ipxe)`;
  return null;
}

/** Why AAVMF in qemu-system-aarch64, with GRUB as the arm64 EFI payload, cannot run here, or null. */
export function aavmfUnavailable(): string | null {
  if (!which('qemu-system-aarch64')) return 'qemu-system-aarch64 missing (apt-get install qemu-system-arm)';
  for (const file of [AAVMF_CODE, AAVMF_VARS]) if (!existsSync(file)) return `${file} missing (apt-get install qemu-efi-aarch64)`;
  if (!existsSync(GRUBNET_AA64)) return `${GRUBNET_AA64} missing (dpkg --add-architecture arm64; apt-get update; apt-get install --no-install-recommends grub-efi-arm64-signed:arm64)`;
  return null;
}

/** The netdev id in a -netdev value such as "tap,id=n0,ifname=...". */
function netdevId(netdev: string): string {
  return netdev.split('id=')[1]?.split(',')[0] ?? 'n0';
}

/**
 * qemu arguments for U-Boot on the virt board (qemu-system-aarch64; with `arch: 'arm'` the 32-bit
 * build for qemu-system-arm). `netdev` is the -netdev value, e.g.
 * "user,id=n0" (slirp: the guest reaches the namespace it runs in through gateway 10.0.2.2) or
 * "tap,id=n0,ifname=lhXXtap,script=no,downscript=no" (a tap on a lab bridge).
 */
export function ubootArgs(options: { netdev: string; mac?: string; memoryMiB?: number; disk?: string; arch?: 'arm64' | 'arm' }): string[] {
  const device = `virtio-net-device,netdev=${netdevId(options.netdev)}${options.mac ? `,mac=${options.mac}` : ''}`;
  // A raw disk image as virtio-blk on the virtio-mmio transport (/dev/vda under Linux).
  const disk = options.disk === undefined ? [] : ['-drive', `file=${options.disk},if=none,format=raw,id=d0`, '-device', 'virtio-blk-device,drive=d0'];
  // qemu-system-arm's virt board runs a cortex-a15 unless told otherwise (U-Boot's qemu_arm).
  const board = options.arch === 'arm' ? ['-bios', UBOOT_ARM] : ['-cpu', 'cortex-a57', '-bios', UBOOT_ARM64];
  return ['-M', 'virt', ...board, '-smp', '1', '-m', String(options.memoryMiB ?? 256),
    '-nographic', '-monitor', 'none', '-no-reboot', '-netdev', options.netdev, '-device', device, ...disk];
}

/**
 * qemu arguments for a PC (SeaBIOS) with no disks that boots from an e1000 NIC whose option ROM is
 * iPXE. SeaBIOS and iPXE both print to and read from the serial console (`-nographic`).
 * `netdev` as for ubootArgs. TCG only (`-accel tcg`): the test must not depend on /dev/kvm.
 */
export function ipxeArgs(options: { netdev: string; mac?: string; memoryMiB?: number }): string[] {
  const device = `e1000,netdev=${netdevId(options.netdev)},romfile=${IPXE_E1000_ROM}${options.mac ? `,mac=${options.mac}` : ''}`;
  return ['-accel', 'tcg', '-m', String(options.memoryMiB ?? 128), '-nographic', '-monitor', 'none', '-no-reboot',
    '-netdev', options.netdev, '-device', device, '-boot', 'order=n'];
}

/**
 * qemu arguments for a q35 PC with OVMF (UEFI) and no disks, which boots from its network: UEFI
 * PXE over IPv4 first (OVMF's own PXE client, PxeBcDxe, not iPXE). `vars` is a writable copy of
 * OVMF_VARS (the firmware writes its boot entries there). The NIC is virtio-net with no option ROM
 * (`romfile=`), so OVMF's own virtio driver and PXE client run; qemu's default ROM for it is
 * iPXE's EFI driver. The firmware's console is the serial port (`-nographic`). TCG only.
 */
export function ovmfArgs(options: { netdev: string; vars: string; mac?: string; memoryMiB?: number; httpBoot?: boolean }): string[] {
  // OVMF's run-time switches (OvmfPkg/RUNTIME_CONFIG.md): with PXE off, the first network boot
  // entry it tries is UEFI HTTP boot over IPv4.
  const http = options.httpBoot === true
    ? ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n'] : [];
  return ['-accel', 'tcg', '-M', 'q35', '-m', String(options.memoryMiB ?? 256), '-nographic', '-monitor', 'none', '-no-reboot', ...http,
    ...edk2FlashAndNic(OVMF_CODE, options)];
}

/**
 * An EDK2 firmware's flash (the code read-only, the writable variable store `vars`) and a
 * virtio-net NIC without option ROM (`romfile=`), so EDK2's own virtio driver and PXE client run.
 */
function edk2FlashAndNic(code: string, options: { netdev: string; vars: string; mac?: string }): string[] {
  const device = `virtio-net-pci,netdev=${netdevId(options.netdev)},romfile=${options.mac ? `,mac=${options.mac}` : ''}`;
  return ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${code}`, '-drive', `if=pflash,format=raw,unit=1,file=${options.vars}`,
    '-netdev', options.netdev, '-device', device];
}

/**
 * qemu-system-aarch64 arguments for the virt board (cortex-a57) with AAVMF (arm64 UEFI) and no
 * disks, which boots from its network: UEFI PXE over IPv4 with EDK2's own PXE client, as ovmfArgs. `vars` is a writable copy of AAVMF_VARS. Its console is
 * the PL011 serial port (`-nographic`). TCG.
 */
export function aavmfArgs(options: { netdev: string; vars: string; mac?: string; memoryMiB?: number }): string[] {
  return ['-M', 'virt', '-cpu', 'cortex-a57', '-smp', '1', '-m', String(options.memoryMiB ?? 256), '-nographic', '-monitor', 'none', '-no-reboot',
    ...edk2FlashAndNic(AAVMF_CODE, options)];
}

/**
 * The serial console of a firmware in a running qemu: wait for text, run commands, read their
 * output. `output` is the console text without ANSI escape sequences, backspaces and carriage
 * returns (iPXE draws with them), so patterns match what a person would read.
 */
export class SerialConsole {
  readonly child: ChildProcess;
  /** The command prompt at the end of the output, e.g. /\n=> $/. */
  readonly promptPattern: RegExp;
  #text = '';
  /** A trailing escape sequence whose end has not arrived yet. */
  #pending = '';
  #waiters: Array<() => void> = [];

  /** Characters typed at a time by type(); all at once when undefined. */
  readonly typeChunk: number | undefined;

  constructor(child: ChildProcess, promptPattern: RegExp, typeChunk?: number) {
    this.child = child;
    this.promptPattern = promptPattern;
    this.typeChunk = typeChunk;
    const onData = (d: Buffer): void => {
      const s = this.#pending + d.toString('latin1');
      const open = /\x1b(\[[0-9;?]*)?$/.exec(s);
      this.#pending = open ? s.slice(open.index) : '';
      this.#text += (open ? s.slice(0, open.index) : s).replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[A-Za-z]|[\b\r]/g, '');
      for (const w of this.#waiters.splice(0)) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }

  /** Everything the console printed so far (cleaned, see the class comment). */
  get output(): string { return this.#text; }

  /** Writes `text` to the console at once. */
  send(text: string): void {
    this.child.stdin?.write(text);
  }

  /**
   * Types `text`: at once, or (with `typeChunk`) a few characters at a time, each chunk only after
   * the firmware echoed the one before. SeaBIOS forwards serial input into the 16-key BIOS keyboard
   * buffer and drops what does not fit while iPXE is busy, so text written at once loses
   * characters. A chunk not echoed within 20 s throws (qemu on a loaded machine can take seconds to echo) rather than run a garbled command.
   */
  async type(text: string): Promise<void> {
    const chunk = this.typeChunk;
    if (chunk === undefined) { this.send(text); return; }
    const enter = text.endsWith('\n');
    const line = enter ? text.slice(0, -1) : text;
    for (let i = 0; i < line.length; i += chunk) {
      const part = line.slice(i, i + chunk);
      const from = this.#text.length;
      this.send(part);
      const echoed = await this.#until(() => this.#text.slice(from).replaceAll('\n', '').length >= part.length, 20_000);
      if (!echoed) throw new Error(`the console did not echo ${JSON.stringify(part)} of ${JSON.stringify(line)}; console:\n${this.#text.slice(-500)}`);
    }
    if (enter) this.send('\n');
  }

  /** Resolves true once `check()` holds (tested after each output), false after `timeoutMs`. */
  async #until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.#waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return true;
  }

  /** Waits until the output after `from` matches, or throws after `timeoutMs` with the output. */
  async waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    let m: RegExpMatchArray | null = null;
    await this.#until(() => (m = this.#text.slice(from).match(pattern)) !== null, timeoutMs);
    if (m !== null) return m;
    if (this.child.exitCode !== null) throw new Error(`qemu exited (${this.child.exitCode}) before ${pattern}; console:\n${this.#text.slice(-2000)}`);
    throw new Error(`no ${pattern} within ${timeoutMs} ms; console:\n${this.#text.slice(-2000)}`);
  }

  /** Runs one command line and returns what it printed up to the next prompt. */
  async run(command: string, timeoutMs = 60_000): Promise<string> {
    // Start at a prompt: one still on its way (the last command's output was awaited, not its
    // prompt) would otherwise arrive after `from` and end this command before its output.
    await this.#until(() => this.promptPattern.test(this.#text), 5000);
    const from = this.#text.length;
    await this.type(`${command}\n`);
    await this.waitFor(this.promptPattern, timeoutMs, from);
    return this.#text.slice(from);
  }
}

/** U-Boot's console: the "=>" prompt. */
export class UbootConsole extends SerialConsole {
  constructor(child: ChildProcess) {
    super(child, /\n=> $/);
  }

  /** Stops autoboot and waits for the "=>" prompt. */
  async prompt(timeoutMs = 60_000): Promise<void> {
    await this.waitFor(/Hit any key to stop autoboot/, timeoutMs);
    this.send('\n');
    await this.waitFor(/=> $/m, 10_000);
  }
}

/** iPXE's console: the "iPXE>" prompt. */
export class IpxeConsole extends SerialConsole {
  constructor(child: ChildProcess) {
    super(child, /(^|\n)iPXE> $/, 4);
  }

  /**
   * Waits for the "Press Ctrl-B for the iPXE command line" banner after `from` (iPXE waits about
   * 2 s there before it boots on its own), presses Ctrl-B and waits for the "iPXE>" prompt.
   */
  async shell(timeoutMs = 60_000, from = 0): Promise<void> {
    const banner = await this.waitFor(/Press Ctrl-B for the iPXE command\s+line/, timeoutMs, from);
    this.send('\x02');
    await this.waitFor(/iPXE> $/, 10_000, from + (banner.index ?? 0));
  }
}
