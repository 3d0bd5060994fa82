// The whole x86 BIOS PXE chain against one real lanha daemon (DHCP and TFTP) in a lab namespace:
// qemu-system-x86_64 (TCG) with SeaBIOS and an e1000 whose option ROM is iPXE, on a tap.
//
// 1. The PXE ROM asks DHCP (option 93 = 0, vendor class PXEClient:Arch:00000) and gets the x86 BIOS
//    rule's next-server and undionly.kpxe. qemu's PXE ROM is itself iPXE, and iPXE always sends
//    user class "iPXE"; a vendor PXE ROM does not. So this first DHCP runs from the ROM's shell
//    with the user class replaced ("PXE-ROM"), which is what a vendor ROM looks like to the rules.
// 2. The ROM chain-loads undionly.kpxe over lanha's TFTP from that next-server.
// 3. undionly.kpxe (a fresh iPXE, user class "iPXE") boots on its own: its DHCP must get the
//    iPXE rule's script, boot.ipxe, not undionly.kpxe again (the chain-load loop), from the iPXE
//    rule's next-server; it fetches the script over lanha's TFTP and runs it; the script prints a
//    marker with what iPXE was told and drops to the shell.
// Each rule has its own next-server address (both on lanha's TFTP), so a reply that took the
// next-server from the wrong rule, or the default, would fetch from an address that is not served.
import t from 'tap';
import { copyFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { IPXE_UNDIONLY, IpxeConsole, ipxeArgs, ipxeUnavailable, requireQemu, firmwareScratch, addTap, tapNetdev } from '../support/qemu.js';
import { logRecords } from '../support/daemon.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const MAC = '52:54:00:97:08:06';

const DHCP = `  subnets:
    - subnet: 10.82.0.0/24
      pools: [10.82.0.100-10.82.0.120]
      router: [10.82.0.1]
      leaseTime: 10m
  boot:
    - { name: ipxe-script, match: { userClass: iPXE }, nextServer: 10.82.0.3, bootfile: boot.ipxe }
    - { name: x86-bios, match: { arch: [0], vendorClass: PXEClient }, nextServer: 10.82.0.2, bootfile: undionly.kpxe }
    - { name: x86-uefi, match: { arch: [7, 9] }, nextServer: 10.82.0.9, bootfile: ipxe.efi }
    - { name: arm64, match: { arch: [22] }, nextServer: 10.82.0.9, bootfile: arm64/boot.scr.uimg }
`;

const SCRIPT = '#!ipxe\necho LANHA-SCRIPT-RAN ip=${net0/ip} next=${next-server} file=${filename}\nshell\n';

interface GrantLog { event: string; mac: string; ip: string; boot?: string; bootfile?: string }
interface TftpLog { event: string; file: string; bytes: number; mac?: string }

/** The daemon's records whose event starts with `event` (whole lines only: logRecords). */
function logLines<T extends { event: string }>(logs: string, event: string): T[] {
  return logRecords<T>(logs).filter((r) => typeof r.event === 'string' && r.event.startsWith(event));
}

t.test('iPXE in qemu-system-x86_64: PXE ROM gets undionly.kpxe, iPXE gets boot.ipxe, both over lanha TFTP', async (t) => {
  if (!requireQemu(t, 'iPXE DHCP test', ipxeUnavailable)) return;
  const scratch = firmwareScratch(t);
  const root = scratch.root;
  mkdirSync(root);
  copyFileSync(IPXE_UNDIONLY, join(root, 'undionly.kpxe'));
  writeFileSync(join(root, 'boot.ipxe'), SCRIPT);
  const tftp = `tftp:\n  port: 69\n  listen: [10.82.0.2, 10.82.0.3]\n  root: ${root}\n`;
  const started = Date.now();
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('ipxe', null);
      // The tap exists before qemu does (qemu attaches to it), so lanha serves before the ROM runs.
      const tap = `lh${lab.id}it`;
      await addTap(host, tap, ['10.82.0.1/24', '10.82.0.2/24', '10.82.0.3/24']);
      server = await startLanhaDhcp(host, '10.82.0.1', DHCP, scratch.dir, tftp);
      const qemu = host.spawn('qemu-system-x86_64', ipxeArgs({ netdev: tapNetdev(tap), mac: MAC }), { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new IpxeConsole(qemu);
      try {
        // 1. The PXE ROM's DHCP, as a vendor PXE ROM would send it.
        await console.shell(90_000);
        await console.run('set user-class PXE-ROM');
        const first = await console.run('ifconf -c dhcp net0 && echo STAGE1 ip=${net0/ip} next=${next-server} file=${filename}', 60_000);
        const stage1 = /STAGE1 ip=([\d.]+) next=([\d.]+) file=([\w.]+)/.exec(first);
        t.ok(stage1, "the ROM's DHCP finished", { output: first });
        t.match(stage1?.[1] ?? '', /^10\.82\.0\.(1[01]\d|120)$/, 'the ROM bound a pool address');
        t.equal(stage1?.[2], '10.82.0.2', "next-server of the x86 BIOS rule");
        t.equal(stage1?.[3], 'undionly.kpxe', 'bootfile of the x86 BIOS rule');
        // 2. + 3. Chain-load iPXE from lanha's TFTP; it boots on its own from there. The ROM hands
        // undionly.kpxe a DHCPACK rebuilt from its settings (PXE cached info), and undionly.kpxe
        // sends the user class found there: clear ours first, or iPXE would pose as the ROM too.
        await console.run('clear user-class');
        const from = console.output.length;
        await console.type('chain tftp://${next-server}/${filename}\n');
        await console.waitFor(/tftp:\/\/10\.82\.0\.2\/undionly\.kpxe\.{3,} ok/, 30_000, from);
        const banner = (await console.waitFor(/iPXE initialising devices/, 30_000, from)).index ?? 0;
        const marker = await console.waitFor(/LANHA-SCRIPT-RAN ip=([\d.]+) next=([\d.]+) file=([\w.]+)\n/, 60_000, from + banner);
        const second = console.output.slice(from + banner);
        t.match(second, /Next server: 10\.82\.0\.3\s+Filename: boot\.ipxe/, "iPXE's own DHCP got the iPXE rule's next-server and script");
        t.notMatch(second.slice(0, marker.index), /Filename: undionly\.kpxe/, 'iPXE was not handed undionly.kpxe again (no chain-load loop)');
        t.equal(marker[1], stage1?.[1], 'iPXE kept the address the ROM was given (same client, same lease)');
        t.equal(marker[2], '10.82.0.3', 'the script saw the iPXE rule next-server');
        t.equal(marker[3], 'boot.ipxe', 'the script saw its own file name');
        await console.waitFor(/iPXE> $/, 10_000, from + banner);

        // The daemon's side: one bound lease for the NIC, in the pool, and which rule each ACK used.
        const leases = await server!.leases();
        const mine = leases.filter((l) => l.mac === MAC);
        t.equal(mine.length, 1, 'lanctl leases lists one lease for the NIC');
        t.equal(mine[0]?.state, 'bound', 'the lease is bound');
        t.equal(mine[0]?.ip, stage1?.[1], 'lanctl leases shows the address iPXE printed');
        // iPXE asks for the address the ROM was just given: with lease caching on (the default) that
        // ACK comes from the lease the ROM's grant committed, logged as dhcp.lease.reused.
        const acks = logLines<GrantLog>(server!.daemon.logs(), 'dhcp.lease.')
          .filter((g) => g.mac === MAC && (g.event === 'dhcp.lease.granted' || g.event === 'dhcp.lease.reused'));
        t.same(acks.map((g) => [g.event, g.boot, g.bootfile]),
          [['dhcp.lease.granted', 'x86-bios', 'undionly.kpxe'], ['dhcp.lease.reused', 'ipxe-script', 'boot.ipxe']],
          'two ACKs: the x86 BIOS rule for the ROM (granted), then the iPXE rule for iPXE (from the lease cache)');
        const logs = server!.daemon.logs;
        const served = await waitFor(() => { const d = logLines<TftpLog>(logs(), 'tftp.transfer.done'); return d.length >= 2 ? d : null; }, 5000) ?? [];
        t.same(served.map((d) => [d.file, d.bytes, d.mac]), [['undionly.kpxe', statSync(IPXE_UNDIONLY).size, MAC], ['boot.ipxe', SCRIPT.length, MAC]],
          'lanha TFTP sent the NIC undionly.kpxe, then boot.ipxe, each whole');
        t.comment(`PXE chain took ${((Date.now() - started) / 1000).toFixed(1)} s`);
        t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
      } finally {
        qemu.kill('SIGKILL');
      }
    });
  } finally {
    await server?.stop();
  }
});
