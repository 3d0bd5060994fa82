// UEFI netboot with the real thing: OVMF (x86-64 UEFI, Debian ovmf) in qemu-system-x86_64 on a tap
// in a lab namespace, its own PXE client (not iPXE), against one lanha daemon (DHCP, TFTP, boot
// files, boot HTTP). Nothing is typed: the firmware boots on its own.
//
// 1. OVMF's DHCP (option 93 = 7, vendor class PXEClient:Arch:00007) gets the x86 UEFI rule's
//    ipxe.efi. Two things it needs that BIOS PXE ROMs, iPXE and U-Boot do not: the OFFER sent to
//    255.255.255.255 (it drops one to the subnet broadcast; lanha sends the limited broadcast from
//    a socket bound to its address on the DHCP subnet, so it leaves there even with the default
//    route on another link, as here) and option 43 beside the echoed PXEClient
//    (without it, the offer is a BINL offer to EDK2, which asks port 4011 for the file).
// 2. Its MTFTP client asks for ipxe.efi with tsize only and aborts after the OACK (the size probe),
//    then downloads it at blksize 1468 and windowsize 4, and starts it.
// 3. ipxe.efi (user class iPXE) asks DHCP again and gets the iPXE rule's boot.ipxe, which lanha
//    renders for this machine (known by its reservation); the script fetches "kernel" and initrd over
//    the boot HTTP listener and boots the kernel, an iPXE script that prints a marker.
// lanha's side: two grants (one per rule), the probe a declined transfer (not failed, no slot
// held), ipxe.efi and boot.ipxe whole, the node's boot events.
// UEFI HTTP boot, second test: OVMF with PXE switched off (fw_cfg) tries "UEFI HTTPv4" first; its
// DHCP (vendor class HTTPClient:Arch:00016) gets a URL on lanha's boot HTTP listener as bootfile and
// option 60 HTTPClient (without it the firmware takes no URL from the offer), downloads ipxe.efi
// over HTTP and starts it; step 3 as above.
import t, { type Test } from 'tap';
import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { logRecords, runLanctl } from '../support/daemon.js';
import { IPXE_EFI, OVMF_VARS, SerialConsole, addTap, firmwareScratch, ovmfArgs, ovmfUnavailable, requireQemu, tapNetdev, x86BootProfile } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const MAC = '52:54:00:97:0e:07';

const DHCP = `  subnets:
    - subnet: 10.86.0.0/24
      pools: [10.86.0.100-10.86.0.120]
      router: [10.86.0.1]
      leaseTime: 10m
      reservations:
        - { mac: "${MAC}", ip: 10.86.0.71, hostname: uefi-n1 }
  boot:
    - { name: ipxe-script, match: { userClass: iPXE }, nextServer: 10.86.0.1, bootfile: boot.ipxe }
    - { name: uefi-http, match: { vendorClass: HTTPClient }, bootfile: "http://10.86.0.1:8080/ipxe.efi" }
    - { name: x86-bios, match: { arch: [0] }, nextServer: 10.86.0.1, bootfile: undionly.kpxe }
    - { name: x86-uefi, match: { arch: [7, 9] }, nextServer: 10.86.0.1, bootfile: ipxe.efi }
`;

interface Line { event: string; file?: string; bytes?: number; size?: number; mac?: string; boot?: string; bootfile?: string; to?: string; outcome?: string }

/** One OVMF boot through ipxe.efi to the kernel script; `httpBoot`: UEFI HTTP boot instead of PXE. */
async function bootOvmf(t: Test, httpBoot: boolean): Promise<void> {
  const scratch = firmwareScratch(t);
  const { initrd: INITRD, yaml: more } = x86BootProfile(scratch.root);
  copyFileSync(IPXE_EFI, join(scratch.root, 'ipxe.efi'));
  const vars = join(scratch.dir, 'OVMF_VARS.fd');
  copyFileSync(OVMF_VARS, vars);
  const efiSize = statSync(IPXE_EFI).size;
  const started = Date.now();
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('ovmf', null);
      const tap = `lh${lab.id}ov`;
      await addTap(host, tap, ['10.86.0.1/24']);
      // The server's default route on ANOTHER link (an uplink, as on a Pi with wlan0 upstream and
      // the cluster on eth0): the kernel routes 255.255.255.255 out of the uplink, yet lanha's
      // replies to clients without an address must leave by the tap, to 255.255.255.255, the only
      // broadcast UEFI PXE takes. They are sent from a socket bound to 10.86.0.1 (interface.ts).
      const uplink = `lh${lab.id}up`;
      // A veth pair with both ends here (this kernel has no dummy module): the uplink needs only to be up.
      for (const args of [['link', 'add', uplink, 'type', 'veth', 'peer', 'name', `lh${lab.id}uq`], ['addr', 'add', '192.168.77.2/24', 'dev', uplink],
        ['link', 'set', `lh${lab.id}uq`, 'up'], ['link', 'set', uplink, 'up'],
        ['route', 'add', 'default', 'via', '192.168.77.1', 'dev', uplink]]) {
        const done = await host.exec('ip', args);
        t.equal(done.code, 0, `ip ${args.join(' ')}: ${done.stderr}`);
      }
      const routed = await host.exec('ip', ['route', 'get', '255.255.255.255']);
      t.match(routed.stdout, new RegExp(`dev ${uplink}\\b`), 'the kernel routes 255.255.255.255 out of the uplink');
      server = await startLanhaDhcp(host, '10.86.0.1', DHCP, scratch.dir, more);
      const logs = server.daemon.logs;
      t.same(logRecords<Line>(logs()).filter((l) => l.event === 'dhcp.broadcast_to').map((l) => l.to), ['255.255.255.255'], 'lanha broadcasts to 255.255.255.255 here');
      const qemu = host.spawn('qemu-system-x86_64', ovmfArgs({ netdev: tapNetdev(tap), vars, mac: MAC, httpBoot }), { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new SerialConsole(qemu, /iPXE> $/);
      try {
        // 1. + 2. The firmware's own PXE or HTTP boot client.
        let nbp: RegExpMatchArray;
        if (httpBoot) {
          await console.waitFor(/>>Start HTTP Boot over IPv4/, 120_000);
          nbp = await console.waitFor(/Downloading\.\.\.100%/, 90_000);
          const firmware = console.output.slice(0, nbp.index);
          t.notMatch(firmware, />>Start PXE/, 'PXE is off: HTTP boot is the first network boot');
          t.match(firmware, /Station IP address is 10\.86\.0\.71\b/, 'the reserved address');
          t.match(firmware, /URI: http:\/\/10\.86\.0\.1:8080\/ipxe\.efi/, 'the HTTP rule\'s URL');
          t.match(firmware, new RegExp(`File Size: ${efiSize} Bytes`), 'the size from lanha\'s HTTP listener');
          t.notMatch(firmware, /Error:/, 'no HTTP boot error on the way');
        } else {
          await console.waitFor(/>>Start PXE over IPv4/, 120_000);
          nbp = await console.waitFor(/NBP file downloaded successfully/, 90_000);
          const firmware = console.output.slice(0, nbp.index);
          t.match(firmware, /Station IP address is 10\.86\.0\.71\b/, 'the reserved address');
          t.match(firmware, /Server IP address is 10\.86\.0\.1\b/, 'the UEFI rule\'s next-server');
          t.match(firmware, /NBP filename is ipxe\.efi\b/, 'the UEFI rule\'s bootfile');
          t.match(firmware, new RegExp(`NBP filesize is ${efiSize} Bytes`), 'the size from the tsize probe\'s OACK');
          t.notMatch(firmware, /PXE-E\d\d/, 'no PXE error on the way');
        }
        t.comment(`OVMF had ipxe.efi ${((Date.now() - started) / 1000).toFixed(1)} s after the start`);
        // 3. ipxe.efi on its own: DHCP, the rendered script, kernel and initrd over HTTP.
        await console.waitFor(/LANHA-KERNEL-RAN/, 120_000, nbp.index);
        const ipxe = console.output.slice(nbp.index);
        t.match(ipxe, httpBoot ? /BdsDxe: starting Boot\d+ "UEFI HTTPv4/ : /BdsDxe: starting Boot\d+ "UEFI PXEv4/, 'the firmware started the downloaded binary');
        t.match(ipxe, /iPXE initialising devices/, 'ipxe.efi runs');
        t.match(ipxe, /net0: 10\.86\.0\.71\/255\.255\.255\.0/, 'iPXE got the same address');
        t.match(ipxe, /Filename: boot\.ipxe/, 'the iPXE rule: the script, not ipxe.efi again');
        t.match(ipxe, /lanha: booting uefi-n1 with profile x86/, 'the script rendered for this machine');
        t.match(ipxe, /http:\/\/10\.86\.0\.1:8080\/x86\/next\.ipxe\.{3,} ok/, 'the kernel over the boot HTTP listener');
        t.match(ipxe, /http:\/\/10\.86\.0\.1:8080\/x86\/initrd\.img\.{3,} ok/, 'the initrd over HTTP');
        t.notMatch(ipxe, /failed \(try/, 'no retries needed');
        t.comment(`UEFI ${httpBoot ? 'HTTP boot' : 'PXE'} chain took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } finally {
        qemu.kill('SIGKILL');
      }

      // lanha's view.
      const grants = logRecords<Line>(logs()).filter((l) => l.mac === MAC && (l.event === 'dhcp.lease.granted' || l.event === 'dhcp.lease.reused'));
      t.same(grants.map((g) => [g.boot, g.bootfile]), [httpBoot ? ['uefi-http', 'http://10.86.0.1:8080/ipxe.efi'] : ['x86-uefi', 'ipxe.efi'], ['ipxe-script', 'boot.ipxe']],
        'one ACK per rule: the firmware, then iPXE');
      const tftp = logRecords<Line>(logs()).filter((l) => l.event.startsWith('tftp.transfer.'));
      const script = ['tftp.transfer.done', 'boot.ipxe', tftp.find((l) => l.file === 'boot.ipxe')?.size, MAC];
      t.same(tftp.map((l) => [l.event, l.file, l.bytes, l.mac]), httpBoot ? [script] : [
        ['tftp.transfer.declined', 'ipxe.efi', 0, MAC],
        ['tftp.transfer.done', 'ipxe.efi', efiSize, MAC],
        script,
      ], httpBoot ? 'only the script over TFTP' : 'the size probe declined, then ipxe.efi and boot.ipxe whole');
      if (httpBoot) {
        const http = logRecords<Line>(logs()).filter((l) => l.event === 'boot.http.done' && l.file === 'ipxe.efi');
        t.ok(http.some((l) => l.bytes === efiSize && l.mac === MAC), `ipxe.efi whole over HTTP: ${JSON.stringify(http)}`);
      }
      const status = await runLanctl(['status', '--json', '--socket', server!.socket]);
      const services = (JSON.parse(status.stdout) as { services: Record<string, { counters?: Record<string, number>; transfers?: unknown[] }> }).services;
      const counters = services['tftp']?.counters ?? {};
      t.equal(counters['tftp.transfers_declined'] ?? 0, httpBoot ? 0 : 1, httpBoot ? 'no TFTP size probe' : 'the probe is counted as declined');
      t.equal(counters['tftp.transfers_failed'] ?? 0, 0, 'and not as a failed transfer');
      t.same(services['tftp']?.transfers, [], 'no transfer slot held');
      const shown = await runLanctl(['nodes', '--mac', MAC, '--json', '--socket', server!.socket]);
      t.equal(shown.code, 0, shown.stderr);
      const events = (JSON.parse(shown.stdout) as { events: Array<{ event: string; detail: string | null }> }).events;
      const detail = (event: string, re: RegExp): boolean => events.some((e) => e.event === event && re.test(e.detail ?? ''));
      t.ok(detail(httpBoot ? 'http' : 'tftp', new RegExp(`^ipxe\\.efi \\(${efiSize} bytes, \\d+ ms\\)$`)), `ipxe.efi in the node's boot events: ${JSON.stringify(events)}`);
      t.ok(detail('http', new RegExp(`^x86/initrd\\.img \\(${INITRD.length} bytes, \\d+ ms\\)$`)), 'the initrd too');
      t.notOk(events.some((e) => /ipxe\.efi \(0 bytes/.test(e.detail ?? '')), 'the size probe is no boot event');
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    });
  } finally {
    await server?.stop();
  }
}

t.test('OVMF (UEFI PXE) boots lanha\'s ipxe.efi, which runs the boot.ipxe lanha renders for it', async (t) => {
  if (!requireQemu(t, 'OVMF UEFI PXE test', ovmfUnavailable)) return;
  await bootOvmf(t, false);
});

t.test('OVMF (UEFI HTTP boot) fetches ipxe.efi from lanha\'s boot HTTP listener, which runs the boot.ipxe lanha renders for it', async (t) => {
  if (!requireQemu(t, 'OVMF UEFI HTTP boot test', ovmfUnavailable)) return;
  await bootOvmf(t, true);
});
