import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { logRecords, scratchConfig, serveDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { UbootConsole, ubootArgs, ubootUnavailable, requireQemu } from '../support/qemu.js';

// U-Boot 2023.01 (Debian u-boot-qemu, qemu_arm64) in qemu-system-aarch64 runs `tftpboot` of a
// file through lanha, and its crc32 matches. Everything runs in one lab namespace: lanha on the
// namespace's address, qemu's user-mode network carrying the guest's packets to that address
// (through gateway 10.0.2.2; qemu's own TFTP at 10.0.2.2:69 is never used).

t.test('u-boot tftpboot through lanha, crc32 matches', async (t) => {
  if (!requireQemu(t, 'u-boot test', ubootUnavailable)) return;
  const scratch = scratchConfig(`node:
  name: uboot-tftp
  stateDir: {{dir}}/state
  controlSocket: {{dir}}/lanha.sock
tftp:
  port: 69
  listen: [10.233.0.1]
  root: {{dir}}/root
`);
  t.teardown(scratch.cleanup);
  chmodSync(scratch.dir, 0o755);
  const root = join(scratch.dir, 'root');
  mkdirSync(root);
  const image = randomBytes(3 * 1048576 + 777);
  writeFileSync(join(root, 'Image'), image, { mode: 0o644 });
  const want = (crc32(image) >>> 0).toString(16).padStart(8, '0');

  await withLab(async (lab) => {
    const host = await lab.addHost('uboot', '10.233.0.1/24');
    const daemon = await serveDaemon(scratch.file, { command: ['ip', 'netns', 'exec', host.ns, process.execPath, LANCTL] });
    const qemu = host.spawn('qemu-system-aarch64', ubootArgs({ netdev: 'user,id=n0', mac: '52:54:00:97:02:02' }), { stdio: ['pipe', 'pipe', 'pipe'] });
    const console = new UbootConsole(qemu);
    try {
      await console.prompt(90_000);
      await console.run('setenv ipaddr 10.0.2.15; setenv netmask 255.255.255.0; setenv gatewayip 10.0.2.2; setenv serverip 10.233.0.1');
      for (const window of ['1', '8']) {
        const out = await console.run(`setenv tftpwindowsize ${window}; tftpboot 0x40200000 Image; crc32 0x40200000 \${filesize}`, 60_000);
        t.match(out, new RegExp(`Bytes transferred = ${image.length}\\b`), `windowsize ${window}: every byte arrived`);
        t.match(out, new RegExp(`==> ${want}`), `windowsize ${window}: crc32 ${want} matches`);
      }
      const doneLines = (): Array<{ blksize: number; windowsize: number }> => logRecords(daemon.logs(), 'tftp.transfer.done');
      for (let i = 0; i < 300 && doneLines().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
      const done = doneLines();
      t.same(done.map((d) => [d.blksize, d.windowsize]), [[1468, 1], [1468, 8]], 'u-boot negotiated blksize 1468, then windowsize 8');
    } finally {
      qemu.kill('SIGKILL');
      await daemon.stop();
    }
  });
});
