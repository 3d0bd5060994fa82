// `lanctl nodes power cycle` against a real board: U-Boot 2023.01 (qemu_arm64) in
// qemu-system-aarch64 on a tap in a lab namespace, its "power" a qemu monitor socket. The site's
// power command (the power: block) is a small script that sends the monitor `system_reset`, as a
// PDU or BMC script would switch the outlet. The board leases its address, is cycled through lanctl,
// starts again from its ROM (its banner and a new DHCP on the console), and the node's boot timeline
// counts the new boot from the cycle: power cycle ok, then the firmware DHCP after it.
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withLab } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { UbootConsole, ubootArgs, ubootUnavailable, requireQemu, addTap, tapNetdev } from '../support/qemu.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const MAC = '52:54:00:97:04:01';
const NAME = 'rack1-p1';

const DHCP = `  subnets:
    - subnet: 10.83.0.0/24
      pools: [10.83.0.100-10.83.0.120]
      router: [10.83.0.1]
      leaseTime: 10m
`;

/** The power "outlet": qemu's monitor; cycle = system_reset, status = on while qemu answers. */
const HOOK = `const net = require('node:net');
const [action, socket] = process.argv.slice(2);
const c = net.createConnection(socket);
c.on('error', (e) => { console.error('monitor: ' + e.message); process.exit(action === 'status' ? 0 : 2); });
c.on('connect', () => {
  if (action === 'status') { console.log('on'); c.end(); return; }
  if (action !== 'cycle') { console.error('this outlet only cycles'); process.exit(3); }
  c.write('system_reset\\n');
  setTimeout(() => { console.log('reset sent'); c.end(); }, 300);
});
`;

t.test('a power cycle through lanctl restarts the board, and its timeline counts the boot from the cycle', async (t) => {
  if (!requireQemu(t, 'power cycle of a U-Boot board', ubootUnavailable)) return;
  let server: LanhaDhcp | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-power-uboot-'));
  try {
    await withLab(async (lab) => {
      const host = await lab.addHost('pwrub', null);
      const tap = `lh${lab.id}pw`;
      await addTap(host, tap, ['10.83.0.1/24']);
      chmodSync(dir, 0o755);
      const monitor = join(dir, 'monitor.sock');
      const hook = join(dir, 'outlet.js');
      writeFileSync(hook, HOOK);
      const more = `nodes:
  - { name: ${NAME}, mac: "${MAC}", ip: 10.83.0.41 }
power:
  command: ["${process.execPath}", "${hook}", "{{action}}", "${monitor}"]
  timeout: 20s
`;
      server = await startLanhaDhcp(host, '10.83.0.1', DHCP, dir, more);
      // The board with a monitor socket and reset left to qemu (ubootArgs exits on reset).
      const args = ubootArgs({ netdev: tapNetdev(tap), mac: MAC }).filter((a) => a !== '-no-reboot');
      args[args.indexOf('-monitor') + 1] = `unix:${monitor},server,nowait`;
      const qemu = host.spawn('qemu-system-aarch64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new UbootConsole(qemu);
      const socket = server.socket;
      try {
        await console.prompt(120_000);
        t.match(await console.run('setenv autoload no; dhcp', 60_000), /DHCP client bound to address 10\.83\.0\.41/, 'the node\'s inventory address');
        const timeline = async (): Promise<string> => (await runLanctl(['nodes', 'show', NAME, '--timeline', '--socket', socket])).stdout;
        t.ok(await waitFor(async () => ((await timeline()).includes('firmware DHCP') ? true : null), 30_000), 'the firmware DHCP is in the timeline');

        const status = await runLanctl(['nodes', 'power', 'status', NAME, '--socket', socket]);
        t.equal(status.code, 0, status.stderr);
        t.match(status.stdout, new RegExp(`${NAME}\\s+status\\s+ok\\s+0\\s+on`), 'status: the outlet\'s own answer');

        const from = console.output.length;
        const cycle = await runLanctl(['nodes', 'power', 'cycle', NAME, '--socket', socket]);
        t.equal(cycle.code, 0, cycle.stderr);
        t.match(cycle.stdout, new RegExp(`${NAME}\\s+cycle\\s+ok\\s+0\\s+reset sent`));
        await console.waitFor(/U-Boot 20\d\d\.\d\d/, 120_000, from);
        t.pass('the board started again from its ROM');
        await console.waitFor(/Hit any key to stop autoboot/, 120_000, from);
        console.send('\n');
        await console.waitFor(/=> $/m, 10_000, from);
        t.match(await console.run('setenv autoload no; dhcp', 60_000), /DHCP client bound to address 10\.83\.0\.41/, 'and leased again');

        const after = await waitFor(async () => {
          const r = await runLanctl(['nodes', 'show', NAME, '--timeline', '--json', '--socket', socket]);
          const steps = (JSON.parse(r.stdout) as { timeline: Array<{ event: string; detail: string | null; sinceBootMs: number }> }).timeline;
          const cycled = steps.findIndex((s) => s.event === 'power' && s.detail === 'cycle ok');
          return cycled >= 0 && steps.slice(cycled + 1).some((s) => s.event === 'dhcp.firmware') ? steps.slice(cycled) : null;
        }, 30_000);
        t.ok(after !== null, 'the timeline has the cycle and a firmware DHCP after it');
        t.equal(after?.[0]?.sinceBootMs, 0, 'the cycle starts the boot');
        t.ok((after?.find((s) => s.event === 'dhcp.firmware')?.sinceBootMs ?? 0) > 0, 'the firmware DHCP after it is counted from the cycle, not a boot of its own');
      } finally {
        qemu.kill('SIGKILL');
      }
    });
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
