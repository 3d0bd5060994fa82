// Lease caching with a real client (busybox udhcpc in a lab namespace): with dhcp.cacheThreshold
// set, a renewal soon after the grant is ACKed from the committed lease: udhcpc is told the lease
// time left (not a fresh one), the lease's log index and expiry stay as they were, the log does not
// grow, and `lanctl status` counts the cached ACK. A renewal that brings a new host name goes
// through the log (a new index, a full lease time).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, stopChild } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { startLanhaDhcp, recordingScript, lastEnv, waitFor, type LanhaDhcp, type LeaseJson } from './dhcp-lab.js';

// One MAC sends up to eight packets within ten seconds here (DISCOVER and REQUEST, the renewal and a
// retransmission of it, then DISCOVER and REQUEST again under a new host name): the default per-MAC
// limit (a burst of 20, services/dhcp/rate-limit.ts) lets all of them in. (With the old limit of 5
// per 10 s, a CI run where the renewal went out twice never showed the renamed client's lease.)
const DHCP = `  cacheThreshold: 0.5
  subnets:
    - subnet: 10.78.0.0/24
      pools: [10.78.0.100-10.78.0.150]
      router: [10.78.0.1]
      leaseTime: 120s
`;

type Lease = LeaseJson & { index: number | null };
interface Status { cluster: { commitIndex: number }; services: { dhcp: { counters: Record<string, number> } } }

t.test('udhcpc renewing early gets the lease time left from the committed lease; nothing is written', async (t) => {
  if (!requireLab(t, ['udhcpc'])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-dhcp-cache-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.78.0.1/24');
      server = await startLanhaDhcp(srv, '10.78.0.1', DHCP);
      const s = server;
      const status = async (): Promise<Status> => JSON.parse((await runLanctl(['status', '--json', '--socket', s.socket])).stdout) as Status;
      const host = await lab.addHost('udhcpc', null);
      const mac = (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
      // The address goes on the interface so the renewal can be sent unicast from it.
      const script = recordingScript(work, 'udhcpc', 'case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface";; esac');
      const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
      const renewals = (): number => envText().split('\n').filter((l) => /^=== renew/.test(l)).length;
      const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '5', '-T', '1', '-s', script, '-x', 'hostname:cached']);
      try {
        const bound = await waitFor(() => lastEnv(envText(), /^bound/), 15_000);
        t.equal(bound?.get('lease'), '120', 'the first ACK: the whole lease time');
        const lease = (await s.leases() as Lease[]).find((l) => l.mac === mac);
        t.ok(lease?.index, `the grant is in the log (index ${lease?.index})`);
        const before = await status();
        await new Promise((r) => setTimeout(r, 4000));
        // busybox udhcpc: SIGUSR1 renews now (a unicast REQUEST to the server, RENEWING).
        const sentS = Date.now() / 1000;
        child.kill('SIGUSR1');
        const renewed = await waitFor(() => (renewals() >= 1 ? lastEnv(envText(), /^renew/) : null), 15_000);
        const seenS = Date.now() / 1000;
        t.ok(renewed, 'udhcpc renewed');
        const told = Number(renewed?.get('lease'));
        const askedS = Date.now() / 1000;
        const after = (await s.leases() as Lease[]).find((l) => l.mac === mac);
        const answeredS = Date.now() / 1000;
        t.equal(renewed?.get('ip'), lease?.ip, 'the same address');
        t.ok(told >= 60 && told <= 116, `the renewal's lease time is the time left of the committed lease, not 120 (${told} s)`);
        // The committed expiry, from lanctl leases (seconds left when it answered), against the end of
        // the lease udhcpc was told (counted from the ACK, which came between SIGUSR1 and the script).
        const left = after?.expiresInS ?? 0;
        t.ok(sentS + told <= answeredS + left + 1, `the lease told ends no later than the committed one (${told} s told, ${left} s left ${(answeredS - seenS).toFixed(1)} s later)`);
        t.ok(seenS + told >= askedS + left - 2, 'and not earlier either (within the whole-second rounding)');
        t.equal(after?.index, lease?.index, 'the lease\'s log index did not move');
        const then = await status();
        t.equal(then.cluster.commitIndex, before.cluster.commitIndex, 'the log did not grow');
        // One, or two when udhcpc sent its REQUEST again before the ACK came (each answered from the lease).
        const reused = (then.services.dhcp.counters['lease.reused'] ?? 0) - (before.services.dhcp.counters['lease.reused'] ?? 0);
        t.ok(reused >= 1 && reused <= 2, `the renewal was ACKed from the cache (${reused} cached ACKs)`);
      } finally {
        await stopChild(child);
      }
      // The same client with another host name: the grant changes the lease, so it is written.
      const other = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '5', '-T', '1', '-s', script, '-x', 'hostname:renamed']);
      try {
        const rebound = await waitFor(async () => (await s.leases() as Lease[]).find((l) => l.mac === mac && l.hostname === 'renamed') ?? null, 15_000);
        t.ok(rebound, 'a new host name is written to the lease');
        const env = lastEnv(envText(), /^bound/);
        t.equal(env?.get('lease'), '120', 'with a whole lease time');
      } finally {
        await stopChild(other);
      }
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    });
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
