// arm64 UEFI netboot with the real thing: AAVMF (EDK2 for arm64, Debian qemu-efi-aarch64) on
// qemu-system-aarch64's virt board (cortex-a57) on a tap in a lab namespace, its own PXE client,
// against one lanha daemon (DHCP, TFTP). This is how arm64 servers and a Raspberry Pi 4 with the
// community UEFI firmware boot. Nothing is typed: the firmware boots on its own.
//
// 1. A reserved machine: AAVMF's DHCP (option 93 = 11, vendor class PXEClient:Arch:00011) gets the
//    arm64 UEFI rule's bootfile, Debian's GRUB netboot image (Debian ships no arm64 iPXE). Its
//    MTFTP client probes the size, downloads it and starts it; GRUB reads grub/grub.cfg from the
//    same server, which prints a marker and powers the machine off (qemu -no-reboot exits).
// 2. An unknown machine (a MAC no reservation or node names) lands on `lanctl nodes pending` with
//    the arch it sent, by name: "ARM 64-bit UEFI (11)".
import t from 'tap';
import { copyFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { logRecords, runLanctl } from '../support/daemon.js';
import { AAVMF_VARS, GRUBNET_AA64, SerialConsole, aavmfArgs, aavmfUnavailable, addTap, firmwareScratch, requireQemu, tapNetdev } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const MAC = '52:54:00:97:0a:11';
const STRANGER = '52:54:00:97:0a:12';

const DHCP = `  subnets:
    - subnet: 10.88.0.0/24
      pools: [10.88.0.100-10.88.0.120]
      router: [10.88.0.1]
      leaseTime: 10m
      reservations:
        - { mac: "${MAC}", ip: 10.88.0.72, hostname: arm-uefi-n1 }
  boot:
    - { name: x86-uefi, match: { arch: [7, 9] }, nextServer: 10.88.0.1, bootfile: ipxe.efi }
    - { name: arm64-uefi, match: { arch: [11] }, nextServer: 10.88.0.1, bootfile: arm64/grubnetaa64.efi }
`;

/** GRUB's netboot image reads $prefix/grub.cfg, its prefix "/grub" on the TFTP server it came from. */
const GRUB_CFG = 'echo "LANHA-GRUB-RAN on $net_default_ip"\nhalt\n';

interface Line { event: string; file?: string; bytes?: number; mac?: string; boot?: string; bootfile?: string; to?: string }

t.test('AAVMF (arm64 UEFI PXE) boots the arm64 UEFI rule\'s GRUB, which reads its grub.cfg from lanha; an unknown one is pending as ARM 64-bit UEFI', async (t) => {
  if (!requireQemu(t, 'AAVMF arm64 UEFI PXE test', aavmfUnavailable)) return;
  const scratch = firmwareScratch(t);
  mkdirSync(join(scratch.root, 'arm64'), { recursive: true });
  mkdirSync(join(scratch.root, 'grub'), { recursive: true });
  copyFileSync(GRUBNET_AA64, join(scratch.root, 'arm64', 'grubnetaa64.efi'));
  writeFileSync(join(scratch.root, 'grub', 'grub.cfg'), GRUB_CFG, { mode: 0o644 });
  const efiSize = statSync(GRUBNET_AA64).size;
  const more = `tftp:\n  root: ${scratch.root}\n`;
  const started = Date.now();
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('aavmf', null);
      const tap = `lh${lab.id}aa`;
      await addTap(host, tap, ['10.88.0.1/24'], '10.88.0.254');
      server = await startLanhaDhcp(host, '10.88.0.1', DHCP, scratch.dir, more);
      const logs = server.daemon.logs;
      t.same(logRecords<Line>(logs()).filter((l) => l.event === 'dhcp.broadcast_to').map((l) => l.to), ['255.255.255.255'], 'lanha broadcasts to 255.255.255.255 here (the default route is on the tap)');
      const boot = (mac: string, name: string): ReturnType<typeof host.spawn> => {
        const vars = join(scratch.dir, `AAVMF_VARS-${name}.fd`);
        copyFileSync(AAVMF_VARS, vars);
        return host.spawn('qemu-system-aarch64', aavmfArgs({ netdev: tapNetdev(tap), vars, mac }), { stdio: ['pipe', 'pipe', 'pipe'] });
      };

      await t.test('the reserved machine: address, GRUB by TFTP, GRUB started and read grub.cfg', async (t) => {
        const qemu = boot(MAC, 'known');
        const console = new SerialConsole(qemu, /grub> $/);
        try {
          await console.waitFor(/>>Start PXE over IPv4/, 120_000);
          const nbp = await console.waitFor(/NBP file downloaded successfully/, 90_000);
          const firmware = console.output.slice(0, nbp.index);
          t.match(firmware, /Station IP address is 10\.88\.0\.72\b/, 'the reserved address');
          t.match(firmware, /Server IP address is 10\.88\.0\.1\b/, 'the arm64 UEFI rule\'s next-server');
          t.match(firmware, /NBP filename is arm64\/grubnetaa64\.efi\b/, 'the arm64 UEFI rule\'s bootfile (option 93 = 11), not the x86 one');
          t.match(firmware, new RegExp(`NBP filesize is ${efiSize} Bytes`), 'the size from the tsize probe\'s OACK');
          t.notMatch(firmware, /PXE-E\d\d/, 'no PXE error on the way');
          t.comment(`AAVMF had GRUB ${((Date.now() - started) / 1000).toFixed(1)} s after the start`);
          await console.waitFor(/LANHA-GRUB-RAN on 10\.88\.0\.72/, 60_000, nbp.index);
          const grub = console.output.slice(nbp.index);
          t.match(grub, /BdsDxe: starting Boot\d+ "UEFI PXEv4/, 'the firmware started the downloaded binary');
          t.match(grub, /Welcome to GRUB!/, 'GRUB runs');
          const exited = await waitFor(() => (qemu.exitCode !== null || qemu.signalCode !== null ? true : null), 30_000);
          t.ok(exited, 'grub.cfg\'s halt powered the machine off');
          t.comment(`AAVMF to GRUB's grub.cfg took ${((Date.now() - started) / 1000).toFixed(1)} s`);
        } finally {
          qemu.kill('SIGKILL');
        }
        const grants = logRecords<Line>(logs()).filter((l) => l.mac === MAC && (l.event === 'dhcp.lease.granted' || l.event === 'dhcp.lease.reused'));
        t.same(grants.map((g) => [g.boot, g.bootfile]), [['arm64-uefi', 'arm64/grubnetaa64.efi']], 'one ACK, by the arm64 UEFI rule');
        const tftp = logRecords<Line>(logs()).filter((l) => l.event.startsWith('tftp.transfer.'));
        t.same(tftp.map((l) => [l.event, l.file, l.bytes]), [
          ['tftp.transfer.declined', 'arm64/grubnetaa64.efi', 0],
          ['tftp.transfer.done', 'arm64/grubnetaa64.efi', efiSize],
          ['tftp.transfer.done', 'grub/grub.cfg', GRUB_CFG.length],
        ], 'the size probe declined, then GRUB whole, then GRUB\'s own request for its grub.cfg');
      });

      await t.test('an unknown machine is pending as ARM 64-bit UEFI (11)', async (t) => {
        const qemu = boot(STRANGER, 'stranger');
        const console = new SerialConsole(qemu, /grub> $/);
        try {
          const pending = await waitFor(async () => {
            const r = await runLanctl(['nodes', 'pending', '--json', '--socket', server!.socket], { timeoutMs: 30_000 });
            const list = JSON.parse(r.stdout) as Array<{ mac: string; arch: number | null; archName: string | null; vendorClass: string | null }>;
            return list.find((p) => p.mac === STRANGER) ?? null;
          }, 120_000);
          t.match(pending, { arch: 11, archName: 'ARM 64-bit UEFI' }, `pending, with the arch it sent: ${JSON.stringify(pending)}`);
          t.match(pending?.vendorClass ?? '', /^PXEClient:Arch:00011\b/, 'and EDK2\'s vendor class');
          const text = await runLanctl(['nodes', 'pending', '--socket', server!.socket], { timeoutMs: 30_000 });
          t.match(text.stdout, new RegExp(`${STRANGER}\\b.*ARM 64-bit UEFI \\(11\\)`), 'lanctl nodes pending names the arch');
          t.notMatch(console.output, /PXE-E\d\d/, 'no PXE error meanwhile');
        } finally {
          qemu.kill('SIGKILL');
        }
      });
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    });
  } finally {
    await server?.stop();
  }
});
