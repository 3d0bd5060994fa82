// The read-only HTTP listener end to end (no root): a real `lanctl serve` with DHCP, DNS and the
// listener on loopback high ports; a lease from the built-in probe with a hostile host name; then
// the status codes (404, 405 + Allow, 400 on a long query), the security headers, Host never
// reflected, the connection cap, JSON equal to `lanctl ... --json`, and promtool on /metrics.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { opsDaemonConfig } from '../support/ops-daemon.js';
import { repoPath } from '../support/paths.js';
import { haveTools } from '../support/tools.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';

interface Got { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function get(port: number, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

// A loaded 2-core machine (several test runs at once) needs more than the default 120 s per file.
t.setTimeout(300_000);

t.test('the HTTP listener serves pages, JSON and metrics read-only', async (t) => {
  const { yaml, dhcpPort, httpPort } = await opsDaemonConfig({ node: 'web1', net: '127.0.30', poolLast: 20, domain: 'web.lan', maxConnections: 4 });
  const scratch = scratchConfig(yaml);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const sock = ['--socket', `${scratch.dir}/s.sock`];
  const probe = await dhcpProbe({ server: '127.0.0.1', port: dhcpPort, mac: '52:54:00:ab:cd:ef', hostname: Uint8Array.from([...Buffer.from('<script>alert(1)</script>'), 0xff, 0x07]) });
  t.equal(probe.acked, '127.0.30.10', 'the probe got a lease');
  const set = await runLanctl(['records', 'set', 'evil.web.lan', 'TXT', '"<script>x</script>"', ...sock]);
  t.equal(set.code, 0, set.stderr);

  t.test('pages: 200 with the security headers, values escaped', async (t) => {
    for (const path of ['/', '/leases', '/nodes', '/nodes/52:54:00:ab:cd:ef', '/dns', '/ntp', '/explain', '/explain?q=52:54:00:ab:cd:ef', '/style.css']) {
      const r = await get(httpPort, path);
      t.equal(r.status, 200, `${path} 200`);
      t.match(String(r.headers['content-security-policy']), "frame-ancestors 'none'", `${path} CSP`);
      t.notMatch(String(r.headers['content-security-policy']), 'unsafe-inline', `${path} no unsafe-inline`);
      t.equal(r.headers['x-content-type-options'], 'nosniff');
      t.equal(r.headers['referrer-policy'], 'no-referrer');
      if (path !== '/style.css') t.notMatch(r.body, /<script/i, `${path}: no script element`);
      t.notMatch(r.body, /https?:\/\/(?!127\.0\.0\.1)/, `${path}: no external asset`);
    }
    const dns = await get(httpPort, '/dns');
    t.match(dns.body, '&lt;script&gt;x&lt;/script&gt;', 'the TXT record shows as text');
    const leases = await get(httpPort, '/leases?q=cd:ef');
    t.match(leases.body, 'data-testid="lease-count">1<');
    t.match(leases.body, /data-testid="lease-hostname">script-alert-1/, 'the DHCP server sanitised the name; the page shows what is stored');
  });

  t.test('wrong method, unknown path, long query', async (t) => {
    const post = await get(httpPort, '/leases', { method: 'POST' });
    t.equal(post.status, 405);
    t.equal(post.headers['allow'], 'GET, HEAD');
    const write = await get(httpPort, '/v1/leases/release', { method: 'POST' });
    t.equal(write.status, 405, 'the control API write route is not reachable here');
    t.equal(write.headers['allow'], 'GET, HEAD');
    t.match(JSON.parse(write.body).error, 'read-only');
    const missing = await get(httpPort, '/nope');
    t.equal(missing.status, 404);
    t.equal((await get(httpPort, '/v1/nope')).status, 404);
    const long = await get(httpPort, `/leases?q=${'a'.repeat(300)}`);
    t.equal(long.status, 400);
    t.match(long.body, 'longer than 256');
    const head = await get(httpPort, '/', { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.body, '');
  });

  t.test('the Host header is never reflected', async (t) => {
    const r = await get(httpPort, '/', { headers: { host: 'evil.example:666' } });
    t.equal(r.status, 200);
    t.notMatch(r.body, 'evil.example');
    t.notMatch(JSON.stringify(r.headers), 'evil.example');
    const notFound = await get(httpPort, '/x', { headers: { host: 'evil.example' } });
    t.notMatch(notFound.body + JSON.stringify(notFound.headers), 'evil.example');
  });

  t.test('JSON routes equal lanctl --json', async (t) => {
    const http = JSON.parse((await get(httpPort, '/v1/leases')).body) as { leases: unknown[] };
    const cli = JSON.parse((await runLanctl(['leases', '--json', ...sock])).stdout) as unknown[];
    t.same(http.leases.map((l) => ({ ...(l as object), expiresInS: 0 })), cli.map((l) => ({ ...(l as object), expiresInS: 0 })));
    const nodes = JSON.parse((await get(httpPort, '/v1/nodes')).body) as { nodes: Array<{ mac: string }> };
    t.same(nodes.nodes.map((n) => n.mac).sort(), ['52:54:00:00:00:99', '52:54:00:ab:cd:ef']);
    const status = JSON.parse((await get(httpPort, '/v1/status')).body) as { node: string; configHash: string };
    const cliStatus = JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { node: string; configHash: string };
    t.equal(status.node, 'web1');
    t.equal(status.configHash, cliStatus.configHash);
    t.match(status.configHash, /^[0-9a-f]{64}$/);
  });

  t.test('a connection past the cap is refused', async (t) => {
    const open: Socket[] = [];
    t.teardown(() => { for (const s of open) s.destroy(); });
    for (let i = 0; i < 4; i++) {
      const s = connect(httpPort, '127.0.0.1');
      s.on('error', () => undefined);
      open.push(s);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const extra = connect(httpPort, '127.0.0.1');
    extra.on('error', () => undefined);
    open.push(extra);
    const closed = await new Promise<boolean>((resolve) => {
      extra.once('close', () => resolve(true));
      extra.once('data', () => resolve(false));
      extra.once('connect', () => extra.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      setTimeout(() => resolve(false), 5000).unref();
    });
    t.ok(closed, 'the fifth connection is closed without an answer');
    for (const s of open) s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.equal((await get(httpPort, '/')).status, 200, 'served again once connections closed');
  });

  t.test('promtool accepts /metrics and the shipped rules', async (t) => {
    const metrics = await get(httpPort, '/metrics');
    t.equal(metrics.status, 200);
    t.match(String(metrics.headers['content-type']), 'text/plain');
    t.match(metrics.body, 'lanha_raft_role{role="leader"} 1');
    t.match(metrics.body, 'lanha_dhcp_ack_duration_seconds_count 1', 'the probe\'s ACK was timed');
    t.notMatch(metrics.body, 'alert', 'no host names in metrics by default');
    if (!haveTools(t, ['promtool'], 'promtool checks (Debian prometheus)')) return;
    const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics.body, encoding: 'utf8' });
    t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
    const rules = spawnSync('promtool', ['check', 'rules', repoPath('examples/prometheus/lanha.rules.yml')], { encoding: 'utf8' });
    t.equal(rules.status, 0, `promtool check rules: ${rules.stdout}${rules.stderr}`);
    t.match(rules.stdout, 'SUCCESS');
  });
});
