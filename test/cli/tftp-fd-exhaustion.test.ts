import t from 'tap';
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logRecords, runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePorts } from '../support/ports.js';
import { haveTools } from '../support/tools.js';
import { decodePacket, encodeAck, encodeRequest } from '../../services/tftp/wire.js';

// TFTP out of file descriptors (RLIMIT_NOFILE lowered by prlimit, then a burst of RRQs): what
// tftpd-hpa users expect. Before, the transfer threads that could not start (Worker initialization
// failure: EMFILE) were handled as crashes: an error line per try and a restart back-off growing to
// 6.4 s and more, and a file that could not be opened for want of a descriptor was answered ERROR 2
// "access violation: file not readable", which ends a U-Boot's boot. Now nothing crashes: a request
// that cannot get its file or socket is not answered (the client's RRQ retry comes back, as for
// maxTransfers), counted, said rate-limited; the threads are tried again quietly; and once
// descriptors are free the server serves again by itself.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** One small file (a single DATA block) fetched with RRQ/ACK; retries the RRQ every 500 ms up to `ms`. */
async function fetchSmall(port: number, name: string, ms: number): Promise<string | null> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((ok) => s.bind(0, '127.0.0.1', ok));
  try {
    return await new Promise<string | null>((resolve) => {
      const rrq = encodeRequest('rrq', name, 'octet');
      const again = setInterval(() => s.send(rrq, port, '127.0.0.1'), 500);
      const give = setTimeout(() => { clearInterval(again); resolve(null); }, ms);
      s.on('message', (msg, rinfo) => {
        const d = decodePacket(msg);
        if (!d.ok || d.value.op !== 'data') return;
        s.send(encodeAck(d.value.block), rinfo.port, rinfo.address);
        clearInterval(again);
        clearTimeout(give);
        resolve(Buffer.from(d.value.data).toString());
      });
      s.send(rrq, port, '127.0.0.1');
    });
  } finally {
    s.close();
  }
}

// workers: 0 runs the transfers on the main thread: the same refusals, no thread to start.
for (const workers of [2, 0]) t.test(`TFTP out of file descriptors (workers: ${workers}): no thread crash, no ERROR 2, counted and said rate-limited, served again by itself`, async (t) => {
  if (!haveTools(t, ['prlimit'], 'TFTP descriptor exhaustion test')) return;
  const port = (await freePorts(1))[0]!;
  const sc = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock", logLevel: info }
tftp: { port: ${port}, listen: [127.0.0.1], root: "{{dir}}/root", workers: ${workers}, perClientTransfers: 1000, maxTransfers: 1000 }
`);
  t.teardown(sc.cleanup);
  const root = join(sc.dir, 'root');
  mkdirSync(root);
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(256 * 1024, 7));
  writeFileSync(join(root, 'hello.txt'), 'hello\n');
  for (const f of ['big.bin', 'hello.txt']) chmodSync(join(root, f), 0o644);
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(() => { d.child.kill('SIGKILL'); });
  const pid = d.child.pid!;
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  // The transfer threads are not started yet (they start with the first request): room for about one.
  const spare = 12;
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${fdCount(pid) + spare}:${hard}`]);
  const sockets: dgram.Socket[] = [];
  const errors: string[] = [];
  try {
    for (let i = 0; i < 80; i++) {
      const s = dgram.createSocket('udp4');
      s.on('message', (msg) => { const p = decodePacket(msg); if (p.ok && p.value.op === 'error') errors.push(`${p.value.code} ${p.value.message}`); });
      await new Promise<void>((ok) => s.bind(0, '127.0.0.1', ok));
      s.send(encodeRequest('rrq', 'big.bin', 'octet'), port, '127.0.0.1');
      sockets.push(s);
    }
    await sleep(4000);
    t.ok(d.child.exitCode === null, 'the daemon still runs');
  } finally {
    for (const s of sockets) s.close();
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
  }
  t.same(errors, [], 'no request was answered with an ERROR for want of descriptors (ERROR 2 "file not readable" ended a U-Boot\'s boot)');
  for (const event of ['tftp.worker_failed', 'tftp.worker_exited', 'tftp.worker_restart_failed', 'tftp.worker_start_failed', 'tftp.transfer_start_failed']) {
    const lines = logRecords(d.logs(), event);
    t.same(lines.length, 0, `no ${event} line: no thread crashed, no transfer start failed`);
    if (lines.length > 0) t.comment(JSON.stringify(lines));
  }
  const said = logRecords<{ what: string; code: string }>(d.logs(), 'tftp.fd_exhausted');
  t.ok(said.length >= 1 && said.length <= 2, `the shortage is said, rate-limited (${said.length} tftp.fd_exhausted lines for 80 requests)`);
  t.match(said[0], { code: 'EMFILE' });
  // Served again by itself once descriptors are free: the threads start and a transfer runs.
  t.equal(await fetchSmall(port, 'hello.txt', 15_000), 'hello\n', 'a transfer is served once descriptors are free');
  for (let i = 0; i < 50 && logRecords(d.logs(), 'tftp.fd_recovered').length === 0; i++) await sleep(100);
  if (!t.equal(logRecords(d.logs(), 'tftp.fd_recovered').length, 1, 'the end of the shortage is said once')) {
    t.comment(d.logs().split('\n').filter((l) => l.includes('tftp')).slice(-20).join('\n'));
  }
  const status = JSON.parse((await runLanctl(['status', '--json', '--config', sc.file])).stdout) as { services: { tftp: { workersRunning: number; counters: Record<string, number> } } };
  const c = status.services.tftp.counters;
  const refused = (c['tftp.fd_exhausted.file'] ?? 0) + (c['tftp.fd_exhausted.socket'] ?? 0) + (c['tftp.fd_exhausted.thread'] ?? 0);
  t.ok(refused > 0, `counted (${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.includes('fd_') || k.includes('dropped'))))})`);
  for (let i = 0; i < 30 && status.services.tftp.workersRunning < workers; i++) {
    await sleep(200);
    status.services.tftp.workersRunning = (JSON.parse((await runLanctl(['status', '--json', '--config', sc.file])).stdout) as typeof status).services.tftp.workersRunning;
  }
  t.equal(status.services.tftp.workersRunning, workers, workers === 0 ? 'no transfer thread (workers: 0)' : 'both transfer threads run again');
  const stopped = await d.stop();
  t.equal(stopped.code, 0, 'it stops cleanly');
});
