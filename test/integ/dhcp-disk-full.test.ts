// The state directory's file system fills up under a perfdhcp load (an 8 MiB tmpfs, filled with
// dd): the daemon stays up (DNS, TFTP and NTP would serve on), DHCP goes silent, status and doctor
// name the file system and its free space; once the fill is removed it writes again by itself
// and ACKs again; a kill -9 and restart then finds every lease perfdhcp saw ACKed, before and after.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, type LabHost } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { perfdhcpRun, startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const DHCP = `  rateLimit: { perMac: 10, global: 100000 }
  subnets:
    - subnet: 10.82.0.0/16
      pools: [10.82.1.0-10.82.60.255]
      leaseTime: 1h
`;

const perfdhcp = (cli: LabHost, seconds: number): Promise<Array<{ ip: string; mac: string }>> => perfdhcpRun(cli, '10.82.0.1', seconds);

t.test('a full state file system: DHCP silent, the daemon up, status and doctor say so, service resumes when space returns, no ACKed lease lost', async (t) => {
  if (!requireLab(t, ['perfdhcp', 'mount', 'dd'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-disk-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'lhdiskfull', dir]);
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.82.0.1/16');
      const cli = await lab.addHost('cli', '10.82.0.2/16');
      server = await startLanhaDhcp(srv, '10.82.0.1', DHCP, dir);
      const s = server;
      let exited: number | null = null;
      s.daemon.child.once('exit', (code) => { exited = code ?? -1; });
      const load = perfdhcp(cli, 8);
      await new Promise((r) => setTimeout(r, 2500));
      try { execFileSync('dd', ['if=/dev/zero', `of=${dir}/fill`, 'bs=64k'], { stdio: 'ignore' }); } catch { /* dd ends with ENOSPC: the file system is full */ }
      const before = await load;
      t.ok(before.length > 50, `perfdhcp saw ${before.length} ACKs before and while the disk filled`);
      t.equal(exited, null, 'the daemon is still running (it used to exit with status 1, and fail every restart on the full disk)');
      t.match(s.daemon.logs(), /"event":"raft\.storage_full"/, 'logged raft.storage_full');
      const status = await runLanctl(['status', '--socket', s.socket]);
      t.match(status.stdout, /STORAGE FULL: the file system of \S+ is full \(0\.\d MiB free of 8\.0 MiB\)/, 'status names the file system and its free space');
      const doctor = await runLanctl(['doctor', '--socket', s.socket]);
      t.match(doctor.stdout, /raft\.storage-full/, 'doctor reports it');
      const silent = await perfdhcp(cli, 2);
      t.equal(silent.length, 0, 'no ACK while the disk is full (none could be made durable)');
      rmSync(join(dir, 'fill'));
      const back = await waitFor(() => (/"event":"raft\.storage_space_returned"/.test(s.daemon.logs()) ? true : null), 10_000);
      t.ok(back, 'logged raft.storage_space_returned once the space was back');
      const after = await perfdhcp(cli, 3);
      t.ok(after.length > 20, `ACKs again without a restart: ${after.length}`);
      t.equal(exited, null, 'never exited');
      await s.daemon.stop('SIGKILL');
      server = await startLanhaDhcp(srv, '10.82.0.1', DHCP, dir);
      const leases = new Map((await server.leases(true)).map((l) => [l.ip, l]));
      const acked = [...new Map([...before, ...after].map(({ ip, mac }) => [ip, mac]))];
      const lost = acked.filter(([ip, mac]) => leases.get(ip)?.mac !== mac);
      t.equal(lost.length, 0, `lost acked leases after kill -9 and restart: ${lost.length} of ${acked.length}`);
    });
  } finally {
    await server?.daemon.stop().catch(() => undefined);
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});
