// U-Boot 2023.01 (qemu_arm64, arch 22) in qemu-system-aarch64 runs `dhcp` against lanha over a tap
// in a lab namespace: it gets an address from the pool, the next-server and the bootfile of the
// boot rule that matches its architecture (option 93), not the rules for other arches.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { withLab } from '../support/netns.js';
import { UbootConsole, ubootArgs, ubootUnavailable, requireQemu, tapNetdev } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const run = promisify(execFile);

const DHCP = `  subnets:
    - subnet: 10.81.0.0/24
      pools: [10.81.0.100-10.81.0.120]
      router: [10.81.0.1]
      leaseTime: 10m
  boot:
    - { name: armv7, match: { arch: [21] }, nextServer: 10.81.0.7, bootfile: armv7/boot.scr.uimg }
    - { name: arm64, match: { arch: [22] }, nextServer: 10.81.0.9, bootfile: arm64/boot.scr.uimg }
    - { name: x86-bios, match: { arch: [0] }, bootfile: undionly.kpxe }
`;

t.test('u-boot (arm64) gets an address, next-server and the arm64 bootfile from lanha', async (t) => {
  if (!requireQemu(t, 'u-boot DHCP test', ubootUnavailable)) return;
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('ubdhcp', null);
      const tap = `lh${lab.id}ut`;
      const qemu = host.spawn('qemu-system-aarch64', ubootArgs({ netdev: tapNetdev(tap), mac: '52:54:00:97:02:02' }), { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new UbootConsole(qemu);
      try {
        const up = await waitFor(async () => ((await host.exec('ip', ['link', 'show', tap])).code === 0 ? true : null), 15_000);
        t.ok(up, 'qemu created its tap in the namespace');
        await run('ip', ['-n', host.ns, 'addr', 'add', '10.81.0.1/24', 'dev', tap]);
        await run('ip', ['-n', host.ns, 'link', 'set', tap, 'up']);
        // Stop autoboot first: its distro boot would run DHCP and TFTP on its own.
        await console.prompt(120_000);
        server = await startLanhaDhcp(host, '10.81.0.1', DHCP);
        const out = await console.run('setenv autoload no; dhcp; printenv ipaddr serverip bootfile', 60_000);
        t.match(out, /DHCP client bound to address 10\.81\.0\.1(0\d|1\d|20)/, 'bound to a pool address');
        t.match(out, /serverip=10\.81\.0\.9/, 'next-server of the arm64 rule');
        t.match(out, /bootfile=arm64\/boot\.scr\.uimg/, 'bootfile of the arm64 rule');
        const leases = await server.leases();
        t.equal(leases.find((l) => l.mac === '52:54:00:97:02:02')?.state, 'bound', 'lanctl leases lists the board');
      } finally {
        qemu.kill('SIGKILL');
      }
    });
  } finally {
    await server?.stop();
  }
});
