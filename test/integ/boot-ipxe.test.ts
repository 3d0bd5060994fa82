// iPXE (qemu-system-x86_64, SeaBIOS, the e1000's iPXE ROM) runs the boot.ipxe lanha renders for it:
// DHCP from lanha, `chain` the script over TFTP, and the script fetches "kernel" and initrd over
// lanha's boot HTTP listener and boots. The "kernel" is an iPXE script that prints a marker (iPXE
// boots scripts like any image), so the whole built-in template runs in a real iPXE: labels,
// `&& goto ... || echo`, `kernel --name`, `initrd --name`, `boot`. The board is known by its DHCP
// reservation (the inventory is empty), so the script carries its name. Both fetches are
// `node.boot` events `http` with their bytes.
import t from 'tap';
import { withLab } from '../support/netns.js';
import { logRecords, runLanctl } from '../support/daemon.js';
import { IpxeConsole, ipxeArgs, ipxeUnavailable, requireQemu, firmwareScratch, addTap, tapNetdev, x86BootProfile } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const MAC = '52:54:00:97:08:16';

const DHCP = `  subnets:
    - subnet: 10.84.0.0/24
      pools: [10.84.0.100-10.84.0.120]
      router: [10.84.0.1]
      leaseTime: 10m
      reservations:
        - { mac: "${MAC}", ip: 10.84.0.61, hostname: pxe-n1 }
  boot:
    - { name: ipxe-script, match: { userClass: iPXE }, nextServer: 10.84.0.1, bootfile: boot.ipxe }
`;

t.test('iPXE runs the boot.ipxe lanha renders for it and fetches kernel and initrd over HTTP', async (t) => {
  if (!requireQemu(t, 'iPXE boot-file test', ipxeUnavailable)) return;
  const scratch = firmwareScratch(t);
  const { kernel: KERNEL, initrd: INITRD, yaml: more } = x86BootProfile(scratch.root);
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('bootipxe', null);
      const tap = `lh${lab.id}bi`;
      await addTap(host, tap, ['10.84.0.1/24']);
      server = await startLanhaDhcp(host, '10.84.0.1', DHCP, scratch.dir, more);
      const qemu = host.spawn('qemu-system-x86_64', ipxeArgs({ netdev: tapNetdev(tap), mac: MAC }), { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new IpxeConsole(qemu);
      try {
        await console.shell(90_000);
        const lease = await console.run('dhcp net0 && echo GOT ip=${net0/ip} file=${filename}', 60_000);
        t.match(lease, /GOT ip=10\.84\.0\.61 file=boot\.ipxe/, 'the reserved address and the iPXE rule');
        const from = console.output.length;
        await console.type('chain tftp://${next-server}/${filename}\n');
        await console.waitFor(/LANHA-KERNEL-RAN/, 90_000, from);
        const out = console.output.slice(from);
        t.match(out, /lanha: booting pxe-n1 with profile x86/, 'the script rendered for this machine');
        t.match(out, /http:\/\/10\.84\.0\.1:8080\/x86\/next\.ipxe\.{3,} ok/, 'the kernel over the boot HTTP listener');
        t.match(out, /http:\/\/10\.84\.0\.1:8080\/x86\/initrd\.img\.{3,} ok/, 'the initrd over HTTP');
        t.notMatch(out, /failed \(try/, 'no retries needed');
        const logs = server!.daemon.logs;
        const done = await waitFor(() => {
          const lines = logRecords<{ file: string; bytes: number; mac?: string }>(logs(), 'boot.http.done');
          return lines.length >= 2 ? lines : null;
        }, 10_000) ?? [];
        t.same(done.map((d) => [d.file, d.bytes, d.mac]), [['x86/next.ipxe', KERNEL.length, MAC], ['x86/initrd.img', INITRD.length, MAC]], 'two HTTP downloads, whole, by this MAC');
        const shown = await runLanctl(['nodes', '--mac', MAC, '--json', '--socket', server!.socket]);
        const events = (JSON.parse(shown.stdout) as { events: Array<{ event: string; detail: string | null }> }).events;
        const initrd = new RegExp(`^x86/initrd\\.img \\(${INITRD.length} bytes, \\d+ ms\\)$`);
        t.ok(events.some((e) => e.event === 'http' && initrd.test(e.detail ?? '')), JSON.stringify(events));
        t.ok(events.some((e) => e.event === 'tftp' && e.detail?.startsWith('boot.ipxe (') === true), 'the script over TFTP');
      } finally {
        qemu.kill('SIGKILL');
      }
    });
  } finally {
    await server?.stop();
  }
});
