// Issue 11 section 4, the acceptance test: an arm64 compute node boots all the way from lanha.
// qemu-system-aarch64 with U-Boot on a lab bridge: DHCP from lanha -> boot.scr.uimg over TFTP ->
// a Debian arm64 kernel and a busybox initramfs over TFTP -> Linux DHCP -> rsync of the root file
// system tree over ssh (key login, pinned host key) onto the node's disk -> the marker read from the
// synced tree on the console -> power off. Then lanha's boot events for the node; a second boot
// after one file of the tree changed moves only that file; and a served script image with a broken
// data CRC makes U-Boot print "Bad data crc". Fixtures come from Debian (test/support/netboot-fixtures.ts).
import t from 'tap';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, withLab } from '../support/netns.js';
import { netbootFixtures, netbootFixturesUnavailable } from '../support/netboot-fixtures.js';
import { NODE_MAC, NODE_IP, NetbootLab, breakDataCrc, netbootUnavailable } from '../support/netboot.js';

t.setTimeout(600_000);

interface NodeEventJson { at: string; event: string; detail: string | null }

t.test('an arm64 node netboots from lanha to Linux, rsyncs its root tree and prints the marker', async (t) => {
  if (!requireLab(t, [])) return;
  const missing = netbootUnavailable() ?? netbootFixturesUnavailable();
  if (missing !== null) {
    if (process.env['CI'] === 'true') t.fail(`CI must run this test but cannot: ${missing}`);
    else { process.stderr.write(`\n*** SKIPPED netboot test: ${missing}\n`); t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); }
    return;
  }
  const fixtures = await netbootFixtures((line) => t.comment(line));
  t.comment(`fixtures: kernel ${fixtures.kernelRelease}, modules ${fixtures.modules.join(' ')}`);

  await withLab(async (lab) => {
    const nl = await NetbootLab.start(lab, { fixtures, server: 'lanha', files: 300 });
    try {
      // First boot: the whole tree arrives.
      const first = await nl.boot();
      const log = first.console;
      t.match(log, /DHCP client bound to address 10\.97\.0\.50/, 'U-Boot got the reserved address from lanha');
      t.match(log, /## Executing script at/, 'U-Boot ran boot.scr.uimg');
      t.match(log, /lanha-netboot: kernel and initramfs from 10\.97\.0\.1/, 'the script is the one lanha served');
      t.match(log, /Starting kernel/, 'booti started the kernel');
      t.match(log, /NETBOOT dhcp ip=10\.97\.0\.50\/24 server=10\.97\.0\.1/, 'Linux got the same address over DHCP');
      t.equal(first.syncExit, 0, 'rsync over ssh exited 0');
      t.equal(first.filesTransferred, 301, 'the first sync moved every file of the tree');
      t.equal(first.marker, readFileSync(join(nl.tree, 'etc/lanha-netboot-marker'), 'utf8').trim(), 'the marker read from the synced tree is the server\'s');
      t.equal(first.exitCode, 0, 'the node powered off (qemu exited 0)');
      t.match(nl.sshd!.logs(), /Accepted publickey for root from 10\.97\.0\.50/, 'sshd saw the node log in with its key');

      const r = await nl.lanctl(['nodes', '--mac', NODE_MAC, '--json']);
      t.equal(r.code, 0, `lanctl nodes --mac exits 0 ${r.stderr}`);
      const node = JSON.parse(r.stdout) as { ip: string; events: NodeEventJson[] };
      t.equal(node.ip, NODE_IP, 'lanctl nodes shows the reserved address');
      const files = node.events.filter((e) => e.event === 'tftp').map((e) => e.detail ?? '');
      t.ok(files.some((f) => f.startsWith('boot.scr.uimg')), `boot events list boot.scr.uimg (${files.join(', ')})`);
      t.ok(files.some((f) => f.startsWith('netboot/Image')), 'boot events list the kernel');
      t.ok(files.some((f) => f.startsWith('netboot/initrd.img')), 'boot events list the initramfs');
      t.ok(node.events.some((e) => e.event === 'dhcp'), 'boot events list the DHCP lease');

      // Second boot, one file changed; first a broken script image at the U-Boot prompt.
      writeFileSync(join(nl.tftpRoot, 'bad.scr.uimg'), breakDataCrc(readFileSync(join(nl.tftpRoot, 'boot.scr.uimg'))), { mode: 0o644 });
      nl.changeMarker('gen-2');
      const second = await nl.boot({ before: [
        // A static address: one more DHCP exchange would count against lanha's per-MAC rate limit.
        'setenv ipaddr 10.97.0.51; setenv netmask 255.255.255.0; setenv serverip 10.97.0.1; tftpboot ${scriptaddr} bad.scr.uimg; source ${scriptaddr}',
      ] });
      t.match(second.beforeOutput[0] ?? '', /Bad data crc/, 'U-Boot refuses a script image with a broken data CRC');
      t.equal(second.syncExit, 0, 'second rsync exited 0');
      t.equal(second.filesTransferred, 1, 'the second sync moved only the changed file');
      t.equal(second.marker, 'gen-2 (changed)', 'the node printed the changed marker');
      t.ok(second.bytesReceived < first.bytesReceived / 10, `the second sync pulled far fewer bytes (${second.bytesReceived} vs ${first.bytesReceived})`);
      t.comment(`first boot, ms from U-Boot's first DHCP: ${JSON.stringify(first.milestones)}`);
      t.comment(`second boot: ${JSON.stringify(second.milestones)}`);
    } finally {
      await nl.stop();
    }
    t.ok(lab.resolvConfUnchanged(), 'the host /etc/resolv.conf is unchanged');
  });
});
