import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort, freeUdpPort } from '../support/ports.js';
import { haveTools } from '../support/tools.js';

// Status and /metrics out of file descriptors. Reading /proc needs a descriptor, and prom-client's
// process_open_fds / process_max_fds kept the values of the scrape before when it failed: at the
// limit, a scrape showed the usage from before (open below max), so an alert on their ratio could
// not fire when it mattered. Now, out of them, open is the limit (every number below it is taken),
// lanha_fds_exhausted is 1, and the status and metrics answers still come (over a connection the
// scraper already holds: a new one cannot be accepted then).

t.setTimeout(120_000);

const nextFd = (pid: number): number => {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let n = 0;
  while (used.has(n)) n++;
  return n;
};
const gauge = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

t.test('out of descriptors, /metrics says so (open = max, lanha_fds_exhausted 1) and status still answers', async (t) => {
  if (!haveTools(t, ['prlimit'], 'metrics descriptor exhaustion test')) return;
  const httpPort = await freePort();
  const sc = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock", logLevel: info }
http: { listen: "127.0.0.1:${httpPort}" }
ntp: { port: ${await freeUdpPort()}, listen: [127.0.0.1], localStratum: 10 }
`);
  t.teardown(sc.cleanup);
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(() => { d.child.kill('SIGKILL'); });
  const pid = d.child.pid!;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (path: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: httpPort, path, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path}: no answer within 10 s`)));
  });
  const before = await get('/metrics');
  t.equal(gauge(before.body, 'lanha_fds_exhausted'), 0, 'not short before');
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  const taker = new net.Socket();
  try {
    // One descriptor to spare: this scrape reads the new limit; then a connection takes the spare.
    const limit = nextFd(pid) + 1;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${hard}`]);
    const spare = await get('/metrics');
    t.equal(gauge(spare.body, 'process_max_fds'), limit, 'the lowered limit is read while a descriptor is left');
    await new Promise<void>((resolve, reject) => { taker.once('error', reject); taker.connect(httpPort, '127.0.0.1', resolve); });
    await new Promise((r) => setTimeout(r, 300));
    const short = await get('/metrics');
    t.equal(short.status, 200, '/metrics answers');
    t.equal(gauge(short.body, 'lanha_fds_exhausted'), 1, 'lanha_fds_exhausted 1');
    t.equal(gauge(short.body, 'process_max_fds'), limit, 'process_max_fds: the limit');
    t.ok(gauge(short.body, 'process_open_fds') >= limit, `process_open_fds at the limit (${gauge(short.body, 'process_open_fds')} of ${limit}), not the count from before`);
    const status = await get('/v1/status');
    t.equal(status.status, 200, 'the status answers');
    t.ok((JSON.parse(status.body) as { node?: string }).node === 'solo', 'with its body');
  } finally {
    taker.destroy();
    if (d.child.exitCode === null) execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
  }
  await new Promise((r) => setTimeout(r, 200));
  const after = await get('/metrics');
  t.equal(gauge(after.body, 'lanha_fds_exhausted'), 0, 'not short once the limit is back');
  t.equal(d.child.exitCode, null, 'the daemon runs');
  t.equal((await d.stop()).code, 0, 'it stops cleanly');
});
