// Issue 11 section 4, the acceptance test: an arm64 compute node boots all the way from lanha.
// qemu-system-aarch64 with U-Boot on a lab bridge: DHCP from lanha -> its own boot.scr.uimg over
// TFTP (rendered per client from a profile) -> a Debian arm64 kernel and a busybox initramfs over
// TFTP -> Linux DHCP -> rsync of a committed root file system generation over ssh (key login,
// pinned host key, through the `lanctl internal ssh-gate` forced command) onto the node's disk ->
// the node checks it against the generation's checklist and reports -> the marker read from the
// synced tree on the console -> power off. Then the node's boot timeline in lanha; a second boot of
// a new generation with one file changed moves only that file; and a script image with a broken
// data CRC makes U-Boot print "Bad data crc". Fixtures come from Debian (test/support/netboot-fixtures.ts).
import t from 'tap';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireQemu } from '../support/qemu.js';
import { withLab } from '../support/netns.js';
import { MARKER_FILE, netbootFixtures, netbootFixturesUnavailable } from '../support/netboot-fixtures.js';
import { NODE_MAC, NODE_IP, NODE_NAME, NetbootLab, breakDataCrc, mkimageScript, netbootUnavailable } from '../support/netboot.js';

t.setTimeout(900_000);

interface NodeEventJson { at: string; event: string; detail: string | null }
interface TimelineStepJson { at: string; deltaMs: number | null; sinceBootMs: number; step: string; event: string; detail: string | null }

t.test('an arm64 node netboots from lanha to Linux, pulls its root file system generation and prints the marker', async (t) => {
  if (!requireQemu(t, 'netboot test', () => netbootUnavailable() ?? netbootFixturesUnavailable())) return;
  const fixtures = await netbootFixtures((line) => t.comment(line));
  t.comment(`fixtures: kernel ${fixtures.kernelRelease}, modules ${fixtures.modules.join(' ')}`);

  await withLab(async (lab) => {
    const nl = await NetbootLab.start(lab, { fixtures, server: 'lanha', files: 300, fleet: true });
    try {
      // First boot: the whole tree (generation 1) arrives.
      const gen1 = await nl.commitTree();
      t.match(gen1, /^[0-9a-f]{64}$/, 'lanctl rootfs commit made generation 1');
      const first = await nl.boot();
      const log = first.console;
      t.match(log, /DHCP client bound to address 10\.97\.0\.50/, 'U-Boot got the reserved address from lanha');
      t.match(log, /## Executing script at/, 'U-Boot ran boot.scr.uimg');
      t.match(log, new RegExp(`lanha: booting ${NODE_NAME} with profile arm64-netboot`), 'the script is the one lanha rendered for this node');
      t.match(log, /Starting kernel/, 'booti started the kernel');
      t.match(log, /NETBOOT dhcp ip=10\.97\.0\.50\/24 server=10\.97\.0\.1/, 'Linux got the same address over DHCP');
      t.equal(first.syncExit, 0, 'rsync over ssh exited 0');
      t.equal(first.verdict, 'ok', 'the node verified the tree against the generation\'s checklist');
      t.equal(first.reportExit, 0, 'lanha recorded the node\'s report');
      t.equal(first.filesTransferred, 301, 'the first sync moved every file of the tree');
      t.equal(first.marker, readFileSync(join(nl.tree, MARKER_FILE), 'utf8').trim(), 'the marker read from the synced tree is the server\'s');
      t.equal(first.exitCode, 0, 'the node powered off (qemu exited 0)');
      t.match(nl.sshd!.log(), /Accepted publickey for root from 10\.97\.0\.50/, 'sshd saw the node log in with its key');

      const r = await nl.lanctl(['nodes', '--mac', NODE_MAC, '--json']);
      t.equal(r.code, 0, `lanctl nodes --mac exits 0 ${r.stderr}`);
      const node = JSON.parse(r.stdout) as { ip: string; events: NodeEventJson[] };
      t.equal(node.ip, NODE_IP, 'lanctl nodes shows the reserved address');
      const files = node.events.filter((e) => e.event === 'tftp').map((e) => e.detail ?? '');
      t.ok(files.some((x) => x.startsWith('boot.scr.uimg')), `boot events list boot.scr.uimg (${files.join(', ')})`);
      t.ok(files.some((x) => x.startsWith('netboot/Image')), 'boot events list the kernel');
      t.ok(files.some((x) => x.startsWith('netboot/initrd.img')), 'boot events list the initramfs');
      t.ok(node.events.some((e) => e.event === 'rsync' && /exit=0\b/.test(e.detail ?? '') && e.detail!.includes(`gen=${gen1.slice(0, 12)}`)), 'boot events list the rsync of generation 1 with exit 0');
      t.ok(node.events.some((e) => e.event === 'verified' && e.detail!.includes(gen1.slice(0, 12))), 'boot events list generation 1 verified');
      const tl = await nl.lanctl(['nodes', 'show', NODE_NAME, '--timeline', '--json']);
      t.equal(tl.code, 0, `lanctl nodes show --timeline exits 0 ${tl.stderr}`);
      const steps = (JSON.parse(tl.stdout) as { timeline: TimelineStepJson[] }).timeline;
      t.comment(`timeline: ${steps.map((s) => `${s.step} [${s.detail ?? ''}] +${s.deltaMs ?? 0}ms`).join(' -> ')}`);
      const order = ['firmware DHCP', 'file (TFTP)', 'OS DHCP', 'rsync', 'generation verified'];
      const seen = steps.map((s) => s.step).filter((s, i, all) => order.includes(s) && all.indexOf(s) === i);
      t.same(seen, order, `the timeline runs ${order.join(' -> ')}`);
      t.match(steps.find((s) => s.step === 'firmware DHCP')?.detail ?? '', /vendor U-Boot\.armv8.*arch 22/, 'firmware DHCP names the vendor class and arch');
      t.match(steps.find((s) => s.step === 'file (TFTP)')?.detail ?? '', /\d+ ?(bytes|B)\b.*\d+ ?ms/, 'each file step carries bytes and ms');
      t.match(steps.find((s) => s.step === 'rsync')?.detail ?? '', /bytes=\d+ exit=0/, 'the rsync step carries bytes and the exit code');

      // Second boot, one file changed (a new generation); first a broken script image at the prompt.
      await mkimageScript('echo this script must never run\n', join(nl.dir, 'good.scr.uimg'));
      writeFileSync(join(nl.tftpRoot, 'bad.scr.uimg'), breakDataCrc(readFileSync(join(nl.dir, 'good.scr.uimg'))), { mode: 0o644 });
      nl.changeMarker('gen-2');
      const gen2 = await nl.commitTree();
      t.not(gen2, gen1, 'the changed tree is a new generation');
      const second = await nl.boot({ before: [
        // A static address, so the prompt's TFTP load of the broken image is all this step adds.
        'setenv ipaddr 10.97.0.51; setenv netmask 255.255.255.0; setenv serverip 10.97.0.1; tftpboot ${scriptaddr} bad.scr.uimg; source ${scriptaddr}',
      ] });
      t.match(second.beforeOutput[0] ?? '', /Bad data crc/, 'U-Boot refuses a script image with a broken data CRC');
      t.notMatch(second.beforeOutput[0] ?? '', /must never run/, 'and does not run it');
      t.equal(second.syncExit, 0, 'second rsync exited 0');
      t.equal(second.verdict, 'ok', 'generation 2 verified on the node');
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
