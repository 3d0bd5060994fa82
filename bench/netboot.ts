// Netboot benchmark (the netboot figure of `npm run bench:deploy`, issue 11): seconds from U-Boot's
// first DHCP request to the marker the booted initramfs prints after rsyncing its root tree over
// ssh, with the LAN node served by lanha (DHCP + TFTP) or by dnsmasq (DHCP + --enable-tftp) and the
// same sshd. Not a test. The two labs live side by side and boots alternate between them, so load
// from elsewhere on the machine falls on both alike. Every boot starts from an empty disk (a cold
// sync of the same tree). Needs root (namespaces, the Debian fixtures).
//   node dist/bench/netboot.js          env: REPEAT (5 boots per server), FILES (300 files in the tree)
import { netbootFixtures, netbootFixturesUnavailable } from '../test/support/netboot-fixtures.js';
import { NetbootLab, netbootUnavailable, type BootResult, type Server } from '../test/support/netboot.js';
import { Lab, labUnavailable } from '../test/support/netns.js';
import { median } from './stats.js';

const REPEAT = Number(process.env['REPEAT'] ?? 5);
const FILES = Number(process.env['FILES'] ?? 300);

async function main(): Promise<number> {
  const reason = labUnavailable() ?? netbootUnavailable() ?? netbootFixturesUnavailable();
  if (reason !== null) {
    console.log(`bench netboot: cannot run: ${reason}`);
    return 1;
  }
  const fixtures = await netbootFixtures((line) => console.log(line));
  const labs: Lab[] = [];
  const nodes = new Map<Server, NetbootLab>();
  const runs = new Map<Server, BootResult[]>([['lanha', []], ['dnsmasq', []]]);
  const stop = async (): Promise<void> => {
    for (const n of nodes.values()) await n.stop();
    for (const l of labs) await l.destroy();
  };
  process.once('SIGINT', () => { void stop().then(() => process.exit(130)); });
  try {
    for (const server of ['lanha', 'dnsmasq'] as const) {
      const lab = await Lab.create();
      labs.push(lab);
      nodes.set(server, await NetbootLab.start(lab, { fixtures, server, files: FILES }));
    }
    console.log(`netboot: ${REPEAT} cold boots per server, ${FILES + 1} files in the tree, kernel ${fixtures.kernelRelease}`);
    console.log('server   run  dhcp->marker  u-boot-dhcp  kernel-start  linux-dhcp  rsync-done (ms from the first DHCP request)');
    for (let i = 1; i <= REPEAT; i++) {
      for (const server of i % 2 === 1 ? (['lanha', 'dnsmasq'] as const) : (['dnsmasq', 'lanha'] as const)) {
        const node = nodes.get(server)!;
        await node.resetDisk();
        const r = await node.boot();
        if (r.syncExit !== 0) throw new Error(`${server} run ${i}: rsync exited ${r.syncExit}`);
        runs.get(server)!.push(r);
        const m = r.milestones;
        console.log(`${server.padEnd(8)} ${String(i).padStart(3)}  ${((r.markerMs - r.firstDhcpMs) / 1000).toFixed(2).padStart(11)} s  ${String(m['uboot-dhcp-bound'] ?? '-').padStart(11)}  ${String(m['kernel-start'] ?? '-').padStart(12)}  ${String(m['linux-dhcp-bound'] ?? '-').padStart(10)}  ${String(m['rsync-done'] ?? '-').padStart(10)}`);
      }
    }
  } finally {
    await stop();
  }
  const seconds = (server: Server): number => median(runs.get(server)!.map((r) => (r.markerMs - r.firstDhcpMs) / 1000));
  const lanha = seconds('lanha');
  const dnsmasq = seconds('dnsmasq');
  for (const phase of ['uboot-dhcp-bound', 'kernel-start', 'linux-dhcp-bound', 'rsync-done'] as const) {
    const ms = (server: Server): string => String(median(runs.get(server)!.map((r) => r.milestones[phase] ?? NaN)));
    console.log(`median ms to ${phase}: lanha=${ms('lanha')} dnsmasq=${ms('dnsmasq')}`);
  }
  console.log(`RESULT netboot.dhcp_to_marker_s lanha=${lanha.toFixed(2)} dnsmasq=${dnsmasq.toFixed(2)} ratio=${(lanha / dnsmasq).toFixed(2)} unit=s better=lower`);
  // The part the server decides (DHCP, script, kernel and initramfs over TFTP); the rest is the
  // emulated CPU booting Linux and running ssh, the same for both servers and noisy on a busy host.
  const toKernel = (server: Server): number => median(runs.get(server)!.map((r) => (r.milestones['kernel-start'] ?? NaN) / 1000));
  console.log(`RESULT netboot.dhcp_to_kernel_s lanha=${toKernel('lanha').toFixed(2)} dnsmasq=${toKernel('dnsmasq').toFixed(2)} ratio=${(toKernel('lanha') / toKernel('dnsmasq')).toFixed(2)} unit=s better=lower`);
  return 0;
}

main().then((code) => process.exit(code), (error: unknown) => {
  console.error(`bench netboot failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
