// U-Boot 2023.01 (qemu_arm64) in qemu-system-aarch64 boots against lanha (DHCP + TFTP + boot
// files) over a tap in a lab namespace. Run 1 lets U-Boot's own distro boot run: it fetches
// boot.scr.uimg, which lanha renders for this board (its name from the DHCP reservation), and runs
// it; the initrd is missing, so the script retries it a bounded number of times and resets the
// board (qemu -no-reboot exits). Run 2, at the prompt: an image with a broken data CRC (a file on
// disk, made by the test) makes U-Boot print "Bad data crc"; then, with the initrd present, the
// script loads kernel and initrd and reaches booti (the test kernel is no kernel, so booti returns
// and the script resets). The boot events are in `lanctl nodes --mac`.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { UbootConsole, ubootArgs, ubootUnavailable, requireQemu, addTap, tapNetdev } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';
import { writeScriptImage } from '../../services/boot/uimage.js';

const MAC = '52:54:00:97:03:07';

const DHCP = `  subnets:
    - subnet: 10.82.0.0/24
      pools: [10.82.0.100-10.82.0.120]
      router: [10.82.0.1]
      leaseTime: 10m
      reservations:
        - { mac: "${MAC}", ip: 10.82.0.57, hostname: rack1-n7 }
  boot:
    - { name: arm64, match: { arch: [22] }, nextServer: 10.82.0.1, bootfile: boot.scr.uimg }
`;

t.test('U-Boot runs the boot.scr.uimg lanha renders for it; a broken data CRC is refused', async (t) => {
  if (!requireQemu(t, 'u-boot boot-file test', ubootUnavailable)) return;
  let server: LanhaDhcp | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-boot-uboot-'));
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('bootub', null);
      const tap = `lh${lab.id}bt`;
      await addTap(host, tap, ['10.82.0.1/24']);
      chmodSync(dir, 0o755);
      const root = join(dir, 'root');
      mkdirSync(join(root, 'arm64'), { recursive: true });
      writeFileSync(join(root, 'arm64', 'Image'), randomBytes(200_000), { mode: 0o644 });
      const bad = writeScriptImage({ script: 'echo "this must never run"\n', name: 'broken', timeS: 0 });
      bad[bad.length - 1] = bad[bad.length - 1]! ^ 0x20;
      writeFileSync(join(root, 'bad.scr.uimg'), bad, { mode: 0o644 });
      const more = `tftp:
  root: ${root}
profiles:
  arm64:
    arch: arm64
    kernel: arm64/Image
    initrd: arm64/initrd.gz
    bootargs: "console=ttyAMA0 lanha.node={{name}}"
boot:
  defaultProfile: arm64
`;
      server = await startLanhaDhcp(host, '10.82.0.1', DHCP, dir, more);
      const netdev = tapNetdev(tap);

      await t.test('distro boot: its own script, bounded retries of a missing initrd, then reset', async (t) => {
        const qemu = host.spawn('qemu-system-aarch64', ubootArgs({ netdev, mac: MAC }), { stdio: ['pipe', 'pipe', 'pipe'] });
        const console = new UbootConsole(qemu);
        try {
          await console.waitFor(/lanha: booting rack1-n7 with profile arm64/, 120_000);
          t.pass('U-Boot ran the script lanha rendered for this board (its name from the reservation)');
          await console.waitFor(/lanha: loading arm64\/initrd\.gz failed \(try 5 of 5\)/, 60_000);
          await console.waitFor(/could not load arm64\/initrd\.gz from 10\.82\.0\.1; resetting in 10 s/, 30_000);
          t.pass('the missing initrd was tried 5 times, then the script gave up');
          const exited = await waitFor(() => (qemu.exitCode !== null || qemu.signalCode !== null ? true : null), 30_000);
          t.ok(exited, 'reset: the board did not hang (qemu -no-reboot exits on reset)');
          t.notMatch(console.output, /Bad data crc|Bad header crc/);
        } finally {
          qemu.kill('SIGKILL');
        }
      });

      await t.test('at the prompt: "Bad data crc" for a broken image; with the initrd, the script reaches booti', async (t) => {
        writeFileSync(join(root, 'arm64', 'initrd.gz'), randomBytes(50_000), { mode: 0o644 });
        const qemu = host.spawn('qemu-system-aarch64', ubootArgs({ netdev, mac: MAC }), { stdio: ['pipe', 'pipe', 'pipe'] });
        const console = new UbootConsole(qemu);
        try {
          await console.prompt(120_000);
          const lease = await console.run('setenv autoload no; dhcp', 60_000);
          t.match(lease, /DHCP client bound to address 10\.82\.0\.57/, 'the reserved address');
          const broken = await console.run('tftpboot ${scriptaddr} bad.scr.uimg; source ${scriptaddr}', 60_000);
          t.match(broken, /Bad data crc/, 'U-Boot refuses the broken image');
          t.notMatch(broken, /this must never run/);
          const from = console.output.length;
          console.send('tftpboot ${scriptaddr} boot.scr.uimg; source ${scriptaddr}\n');
          await console.waitFor(/lanha: booti returned, the kernel did not start/, 90_000, from);
          const out = console.output.slice(from);
          t.match(out, /Bytes transferred = 200000\b/, 'the kernel');
          t.match(out, /Bytes transferred = 50000\b/, 'the initrd');
          t.notMatch(out, /failed \(try/, 'no retries needed');
        } finally {
          qemu.kill('SIGKILL');
        }
      });

      await t.test('the boot events name each file with bytes and ms', async (t) => {
        const shown = await runLanctl(['nodes', '--mac', MAC, '--json', '--socket', server!.socket]);
        t.equal(shown.code, 0, shown.stderr);
        const node = JSON.parse(shown.stdout) as { events: Array<{ event: string; detail: string | null }> };
        const files = node.events.filter((e) => e.event === 'tftp').map((e) => e.detail ?? '');
        t.ok(files.some((d) => /^boot\.scr\.uimg \(\d+ bytes, \d+ ms\)$/.test(d)), files.join('; '));
        t.ok(files.some((d) => /^arm64\/Image \(200000 bytes, \d+ ms\)$/.test(d)), files.join('; '));
      });
    });
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
