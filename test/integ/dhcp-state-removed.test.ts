// The state directory removed under a running daemon (rm -rf during a perfdhcp load): the WAL's
// live segment is then a file no start reads, though writes and fdatasyncs into it still succeed.
// The daemon must stop acknowledging at once: the next fdatasync finds the segment gone, the
// daemon logs daemon.storage_broken naming it and exits with status 1 (the service manager starts
// it again from what is on the disk). Before, it went on ACKing leases that a restart had never
// heard of (799 of 799 lost in a run by hand).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab } from '../support/netns.js';
import { perfdhcpRun, startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const DHCP = `  rateLimit: { perMac: 10, global: 100000 }
  subnets:
    - subnet: 10.84.0.0/16
      pools: [10.84.1.0-10.84.60.255]
      leaseTime: 1h
`;

t.test('rm -rf of the state directory under load: no ACK after it, daemon.storage_broken names the segment, exit status 1', async (t) => {
  if (!requireLab(t, ['perfdhcp'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-state-removed-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.84.0.1/16');
      const cli = await lab.addHost('cli', '10.84.0.2/16');
      server = await startLanhaDhcp(srv, '10.84.0.1', DHCP, dir);
      const s = server;
      let exited: number | null = null;
      s.daemon.child.once('exit', (code) => { exited = code ?? -1; });
      const load = perfdhcpRun(cli, '10.84.0.1', 4);
      await new Promise((r) => setTimeout(r, 1500));
      rmSync(join(dir, 'state'), { recursive: true, force: true });
      const before = await load;
      t.ok(before.length > 20, `perfdhcp saw ${before.length} ACKs before the removal`);
      t.ok(await waitFor(() => exited, 5000) !== null, 'the daemon ended by itself');
      t.equal(exited, 1, 'with exit status 1, for the service manager to start it again');
      t.match(s.daemon.logs(), /"event":"daemon\.storage_broken".*wal\/\d+-\d+\.wal at offset 0: was deleted or moved away while lanha wrote it/, 'daemon.storage_broken names the segment and what happened');
      const after = await perfdhcpRun(cli, '10.84.0.1', 2);
      t.equal(after.length, 0, 'no ACK after the removal (none would have been durable)');
    });
  } finally {
    await server?.daemon.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
