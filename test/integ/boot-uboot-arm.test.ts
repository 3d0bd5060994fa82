// 32-bit ARM U-Boot (2023.01, qemu_arm, armv7) in qemu-system-arm against lanha (DHCP, TFTP, boot
// files) over a tap in a lab namespace, as boot-uboot.test.ts does for arm64. Its DHCP sends option
// 93 = 21 ("arm 32 uboot") and vendor class U-Boot.armv7.
// Run 1, U-Boot on its own (distro boot): the arm rule's boot.scr.uimg, rendered for this board
// (an inventory node with its own address) with the profile of arch arm, loads the zImage and the initrd to the
// board's addresses and runs bootz (the test kernel is no kernel: bootz refuses it, the script
// resets the board and qemu -no-reboot exits).
// Run 2, at the prompt: iminfo reads the image header as U-Boot sees it (ARM, script); then the
// node's profile is set to an arm64 one: the script names the mismatch and returns to
// the prompt, with no boot and no reset (a board that reset would ask again and loop for ever).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { UBOOT_QEMU, UbootConsole, addTap, firmwareScratch, requireQemu, tapNetdev, ubootArgs, ubootUnavailable } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const MAC = '52:54:00:97:15:08';

const DHCP = `  subnets:
    - subnet: 10.83.0.0/24
      pools: [10.83.0.100-10.83.0.120]
      router: [10.83.0.1]
      leaseTime: 10m
  boot:
    - { name: arm64, match: { arch: [22] }, nextServer: 10.83.0.1, bootfile: arm64/boot.scr.uimg }
    - { name: arm, match: { arch: [21] }, nextServer: 10.83.0.1, bootfile: boot.scr.uimg }
`;

t.test('32-bit ARM U-Boot runs the boot.scr.uimg lanha renders for an arm profile; an arm64 profile is refused, not looped', async (t) => {
  if (!requireQemu(t, '32-bit ARM U-Boot test', () => ubootUnavailable('arm'))) return;
  const scratch = firmwareScratch(t);
  const root = scratch.root;
  mkdirSync(join(root, 'arm'), { recursive: true });
  writeFileSync(join(root, 'arm', 'zImage'), randomBytes(200_000), { mode: 0o644 });
  writeFileSync(join(root, 'arm', 'initrd.gz'), randomBytes(50_000), { mode: 0o644 });
  const more = `tftp:
  root: ${root}
profiles:
  arm32:
    arch: arm
    kernel: arm/zImage
    initrd: arm/initrd.gz
    bootargs: "console=ttyAMA0 lanha.node={{name}}"
  arm64:
    arch: arm64
    kernel: arm64/Image
    bootargs: "console=ttyAMA0"
boot:
  defaultProfile: arm32
`;
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('bootarm', null);
      const tap = `lh${lab.id}ba`;
      await addTap(host, tap, ['10.83.0.1/24']);
      server = await startLanhaDhcp(host, '10.83.0.1', DHCP, scratch.dir, more);
      const added = await runLanctl(['nodes', 'add', 'rack2-n8', '--mac', MAC, '--ip', '10.83.0.58', '--profile', 'arm32', '--socket', server.socket]);
      t.equal(added.code, 0, added.stderr);
      const netdev = tapNetdev(tap);
      const boot = (): ReturnType<typeof host.spawn> => host.spawn(UBOOT_QEMU.arm, ubootArgs({ netdev, mac: MAC, arch: 'arm' }), { stdio: ['pipe', 'pipe', 'pipe'] });

      await t.test('distro boot: the arm rule, the script for this board, zImage and initrd, bootz, then reset', async (t) => {
        const qemu = boot();
        const console = new UbootConsole(qemu);
        try {
          const banner = await console.waitFor(/lanha: booting rack2-n8 with profile arm32/, 120_000);
          const before = console.output.slice(0, banner.index);
          t.match(before, /DHCP client bound to address 10\.83\.0\.58\b/, 'the node\'s address');
          t.match(before, /Filename 'boot\.scr\.uimg'/, 'the arm rule\'s file (option 93 = 21), not the arm64 one');
          await console.waitFor(/lanha: bootz returned, the kernel did not start; resetting in 10 s/, 90_000, banner.index);
          const out = console.output.slice(banner.index);
          t.match(out, /Filename 'arm\/zImage'\.\s+Load address: 0x40400000[\s\S]*?Bytes transferred = 200000\b/, 'the zImage to kernel_addr_r');
          t.match(out, /Filename 'arm\/initrd\.gz'\.\s+Load address: 0x44000000[\s\S]*?Bytes transferred = 50000\b/, 'the initrd to ramdisk_addr_r');
          t.match(out, /zimage: Bad magic!/, 'bootz ran (and refused the test kernel)');
          t.notMatch(out, /failed \(try|Unknown command/, 'no retries, every command known');
          const exited = await waitFor(() => (qemu.exitCode !== null || qemu.signalCode !== null ? true : null), 30_000);
          t.ok(exited, 'reset: the board did not hang (qemu -no-reboot exits on reset)');
        } finally {
          qemu.kill('SIGKILL');
        }
      });

      await t.test('at the prompt: the image header says ARM; an arm64 profile is named and refused without a reset', async (t) => {
        const qemu = boot();
        const console = new UbootConsole(qemu);
        try {
          await console.prompt(120_000);
          const lease = await console.run('setenv autoload no; dhcp', 60_000);
          t.match(lease, /DHCP client bound to address 10\.83\.0\.58\b/);
          const info = await console.run('tftpboot ${scriptaddr} boot.scr.uimg; iminfo ${scriptaddr}', 60_000);
          t.match(info, /Image Name:\s+lanha rack2-n8/, 'rendered for this board');
          t.match(info, /Image Type:\s+ARM Linux Script/, 'arch ARM, type script, as U-Boot reads the header');
          t.match(info, /Verifying Checksum \.\.\. OK/);
          const set = await runLanctl(['nodes', 'set', 'rack2-n8', '--profile', 'arm64', '--socket', server!.socket]);
          t.equal(set.code, 0, set.stderr);
          const refused = await console.run('tftpboot ${scriptaddr} boot.scr.uimg; source ${scriptaddr}; echo SCRIPT-RETURNED', 60_000);
          t.match(refused, /lanha: profile arm64 boots arm64 \(booti\), but this U-Boot is built for armv7/, 'the mismatch, named');
          t.match(refused, /lanha: not booting rack2-n8: give it a profile with arch: arm/, 'and the fix');
          const ran = refused.slice(refused.indexOf('## Executing script'));
          t.notMatch(ran, /lanha: booting|Filename|Unknown command|resetting/, 'nothing loaded, no booti tried, no reset');
          t.match(refused, /SCRIPT-RETURNED/, 'back at the prompt');
          t.equal(qemu.exitCode, null, 'the board is still up');
        } finally {
          qemu.kill('SIGKILL');
        }
      });

      await t.test('the boot events name each file with bytes and ms', async (t) => {
        const shown = await runLanctl(['nodes', '--mac', MAC, '--json', '--socket', server!.socket]);
        t.equal(shown.code, 0, shown.stderr);
        const files = (JSON.parse(shown.stdout) as { events: Array<{ event: string; detail: string | null }> }).events.filter((e) => e.event === 'tftp').map((e) => e.detail ?? '');
        t.ok(files.some((d) => /^arm\/zImage \(200000 bytes, \d+ ms\)$/.test(d)), files.join('; '));
        t.ok(files.some((d) => /^arm\/initrd\.gz \(50000 bytes, \d+ ms\)$/.test(d)), files.join('; '));
      });
    });
  } finally {
    await server?.stop();
  }
});
