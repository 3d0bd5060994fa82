import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { logRecords, runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort, freeUdpPort } from '../support/ports.js';
import { haveTools } from '../support/tools.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';

// The Raft storage out of file descriptors (RLIMIT_NOFILE lowered by prlimit to what the daemon
// holds, then DHCP grants until the log takes a snapshot: a new file to open). Before, the
// snapshot's EMFILE broke the WAL for good: raft.storage_broken, and the daemon exited (DNS, TFTP,
// NTP and the VIP gone with it). etcd does the same on a failed WAL cut (the server's Save fails
// and it exits for its supervisor). Now it is a refusal that took nothing in, as a full disk is:
// the member is fenced (no ACK it did not write: DHCP silent), says so once, keeps serving the
// rest, and once descriptors are free reads its state back from the disk and writes again; every
// lease it ACKed is on the disk after a restart.

t.setTimeout(240_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The descriptor number the process's next open would get: RLIMIT_NOFILE bounds the number, so a limit at it leaves none to open. */
const nextFd = (pid: number): number => {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let n = 0;
  while (used.has(n)) n++;
  return n;
};
const mac = (i: number): string => `52:54:00:00:26:${i.toString(16).padStart(2, '0')}`;

t.test('Raft storage out of file descriptors: fenced, said once, not ended; writes again by itself; no ACKed lease lost', async (t) => {
  if (!haveTools(t, ['prlimit'], 'Raft descriptor exhaustion test')) return;
  const dhcpPort = await freeUdpPort();
  const raftPort = await freePort();
  const sc = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock", logLevel: info }
cluster: { id: fdtest, members: [{ name: solo, address: "127.0.0.1:${raftPort}" }], snapshotEntries: 10 }
dhcp:
  port: ${dhcpPort}
  listen: 127.0.0.1
  subnets: [{ subnet: 127.0.0.0/8, pools: [127.0.26.10-127.0.26.200] }]
`);
  t.teardown(sc.cleanup);
  let d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(() => { d.child.kill('SIGKILL'); });
  const pid = d.child.pid!;
  const acked = new Map<string, string>();
  const probe = async (i: number, timeoutMs: number): Promise<boolean> => {
    try {
      const r = await dhcpProbe({ server: '127.0.0.1', port: dhcpPort, mac: mac(i), timeoutMs });
      acked.set(mac(i), r.acked);
      return true;
    } catch { return false; }
  };
  t.ok(await probe(1, 5000), 'a lease before the shortage');
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  let silent = 0;
  try {
    // No descriptor to spare: appends to the open segment go on, the snapshot file cannot be opened.
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${nextFd(pid)}:${hard}`]);
    for (let i = 2; i < 40 && silent < 2 && d.child.exitCode === null; i++) if (!(await probe(i, 1500))) silent++;
    await sleep(1000);
    t.equal(d.child.exitCode, null, 'the daemon still runs');
    t.same(logRecords(d.logs(), 'raft.storage_broken'), [], 'no raft.storage_broken: the WAL is not given up');
    t.equal(silent, 2, 'DHCP fell silent once the log could not write (no ACK it did not make durable)');
    const said = logRecords<{ err: { code: string }; fullCount: number; open?: unknown; limit?: unknown }>(d.logs(), 'raft.storage_fd_exhausted');
    t.equal(said.length, 1, 'said once');
    t.match(said[0], { err: { code: 'EMFILE' }, fullCount: 1 }, 'with the error and the count');
    // The limit is read through a descriptor held from the start: not null at the shortage.
    t.match(said[0], { open: Number, limit: Number }, `with the descriptors open and the limit (${JSON.stringify({ open: said[0]?.['open'], limit: said[0]?.['limit'] })})`);
    await sleep(4500); // two more checks at the limit: still one line
    t.equal(logRecords(d.logs(), 'raft.storage_fd_exhausted').length, 1, 'still one line after more checks');
  } finally {
    if (d.child.exitCode === null) execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
  }
  for (let i = 0; i < 60 && logRecords(d.logs(), 'raft.storage_fd_recovered').length === 0; i++) await sleep(200);
  t.equal(logRecords(d.logs(), 'raft.storage_fd_recovered').length, 1, 'the end is said once: the state read back from the disk');
  let again = false;
  for (let i = 0; i < 10 && !again; i++) again = await probe(100 + i, 2000);
  t.ok(again, 'DHCP grants again once descriptors are free');
  const status = JSON.parse((await runLanctl(['status', '--json', '--config', sc.file])).stdout) as { cluster: { storage: { full: unknown; fullCount: number } } };
  t.equal(status.cluster.storage.full, null, 'status: no storage refusal now');
  t.ok(status.cluster.storage.fullCount >= 1, 'status counts the refusal');
  const stopped = await d.stop();
  t.equal(stopped.code, 0, 'it stops cleanly');
  // Every lease it ACKed is in the log on the disk.
  d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  const leases = JSON.parse((await runLanctl(['leases', '--json', '--config', sc.file])).stdout) as Array<{ mac: string; ip: string }>;
  const onDisk = new Map(leases.map((l) => [l.mac, l.ip]));
  const lost = [...acked].filter(([m, ip]) => onDisk.get(m) !== ip);
  t.same(lost, [], `all ${acked.size} ACKed leases are there after a restart`);
  t.equal((await d.stop()).code, 0);
});
