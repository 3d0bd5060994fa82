// Durability: kill -9 `lanctl serve` in the middle of a perfdhcp load, restart it on the same state
// directory, and check that every lease perfdhcp saw ACKed is still there for the same client
// (lost acked leases = 0). This holds because an ACK leaves only after its lease is fsync'd.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab } from '../support/netns.js';
import { perfdhcpAcks, startLanhaDhcp, type LanhaDhcp } from './dhcp-lab.js';

const DHCP = `  rateLimit: { perMac: 10, global: 100000 }
  subnets:
    - subnet: 10.80.0.0/16
      pools: [10.80.1.0-10.80.60.255]
      leaseTime: 1h
`;

/** The address -> MAC pairs perfdhcp saw ACKed (the last MAC for an address). */
export function ackedLeases(out: string): Array<{ ip: string; mac: string }> {
  return [...new Map(perfdhcpAcks(out).map(({ ip, mac }) => [ip, mac]))].map(([ip, mac]) => ({ ip, mac }));
}

t.test('kill -9 during a perfdhcp load loses no ACKed lease', async (t) => {
  if (!requireLab(t, ['perfdhcp'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-dhcp-kill9-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.80.0.1/16');
      const cli = await lab.addHost('cli', '10.80.0.2/16');
      server = await startLanhaDhcp(srv, '10.80.0.1', DHCP, dir);
      const perf = cli.spawn('perfdhcp', ['-4', '-l', cli.ifname, '-r', '300', '-R', '20000', '-p', '5', '-x', 'l', '10.80.0.1']);
      let out = '';
      perf.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
      perf.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
      const exited = new Promise<void>((resolve) => perf.once('exit', () => resolve()));
      await new Promise((r) => setTimeout(r, 2500));
      const killed = await server.daemon.stop('SIGKILL');
      t.equal(killed.signal, 'SIGKILL', 'the daemon died by kill -9');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      const acked = ackedLeases(out);
      t.ok(acked.length > 100, `perfdhcp saw ${acked.length} ACKs before the kill`);

      server = await startLanhaDhcp(srv, '10.80.0.1', DHCP, dir);
      const after = new Map((await server.leases(true)).map((l) => [l.ip, l]));
      const lost = acked.filter(({ ip, mac }) => after.get(ip)?.mac !== mac || after.get(ip)?.state !== 'bound');
      t.equal(lost.length, 0, `lost acked leases: ${lost.length} of ${acked.length} (first: ${JSON.stringify(lost.slice(0, 3))})`);
      process.stdout.write(`# dhcp.lost_acked=${lost.length} acked=${acked.length}\n`);
    });
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
