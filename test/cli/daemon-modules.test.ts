// What the daemon's own processes load (issue 14, resident memory). Every module a process loads
// stays in its V8 heap for good, so the daemon's memory follows its module list:
// - the daemon reads and checks its config in a child process of its own (config/load-off-loop.ts),
//   so the schemas (zod, ~95 modules, ~7 MiB of old generation and a young generation grown to hold
//   their start-up garbage) go with that process and never load into the daemon's heap;
// - a DNS UDP worker process loads the UDP serving path and nothing else: no daemon, no config, no
//   other service, no Raft log.
// Both are read with the module trace (test/support/module-trace.ts) inherited through NODE_OPTIONS,
// one file per process. Not a size: the lists (bench:dhcp phase 7 measures the memory).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort, freeUdpPort } from '../support/ports.js';

t.setTimeout(180_000);

const TRACE = fileURLToPath(new URL('../support/module-trace.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The modules process `pid` listed (paths under dist/, or node_modules/PKG/...) from `entry` on:
 * what the test runner preloads into every child before it (its process-info hooks) is not lanha's.
 */
function traced(dir: string, pid: number, entry: string): string[] {
  let lines: string[] = [];
  try { lines = readFileSync(join(dir, `trace-${pid}.txt`), 'utf8').split('\n').filter((l) => l !== ''); } catch { /* loaded nothing traced */ }
  return lines.map((u) => fileURLToPath(u)).filter((p) => p !== TRACE && !p.endsWith('module-trace-hooks.js'))
    .map((p) => (p.includes('/node_modules/') ? `node_modules/${p.split('/node_modules/').pop()}` : p.startsWith(DIST) ? p.slice(DIST.length) : p))
    .filter((_, i, all) => i >= all.indexOf(entry) && all.includes(entry));
}

/** The config's schemas: zod and the modules that define them with it. */
const SCHEMAS = [/^node_modules\/zod\//, /^config\/index\.js$/, /^lib\/(schema|config|control-config)\.js$/, /^services\/[^/]+\/config\.js$/, /^cluster\/(config|inventory-config|power-config|deploy\/config|etcd\/config)\.js$/];

/** A DNS UDP worker's whole list: the UDP serving path (answers, forwarding, its cache) and the pieces it reports with. */
const WORKER_MODULES = new Set([
  'services/dns/udp-worker.js', 'services/dns/udp-workers.js', 'services/dns/answerer.js', 'services/dns/handler.js', 'services/dns/fast.js',
  'services/dns/fast-send.js', 'services/dns/cache.js', 'services/dns/forward.js', 'services/dns/upstream-udp.js', 'services/dns/admit.js',
  'services/dns/rrl.js', 'services/dns/miss-trace.js', 'services/dns/zone.js', 'services/dns/name.js', 'services/dns/rdata.js', 'services/dns/wire.js',
  'lib/assert.js', 'lib/clock.js', 'lib/counters.js', 'lib/errors.js', 'lib/fd-exhaustion.js', 'lib/ipv4.js', 'lib/log.js', 'lib/loop-delay.js',
  'lib/memory.js', 'lib/random.js', 'lib/result.js', 'lib/udp-backlog.js', 'lib/udp-direct.js', 'lib/udp-lookup.js', 'lib/udp-reading.js',
  'lib/wire-writer.js', 'node_modules/pino/pino.js',
]);

t.test('the daemon loads no config schema; a DNS worker process loads its UDP path only', async (t) => {
  const scratch = scratchConfig(`node: { name: mods, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${await freeUdpPort()}
  listen: 127.0.0.1
  subnets: [{ subnet: 127.0.0.0/8, pools: [127.0.61.10-127.0.61.20], domain: mods.lan }]
dns:
  port: ${await freePort()}
  listen: [127.0.0.1]
  workers: 1
  zones: [{ name: mods.lan, leases: true, records: ["www A 127.0.0.80"] }]
ntp: { port: ${await freeUdpPort()}, listen: [127.0.0.1], localStratum: 10 }
nodes: [{ name: rack1, mac: "52:54:00:00:06:11", ip: 127.0.61.50 }]
`);
  t.teardown(scratch.cleanup);
  // The daemon inherits this process's environment, and its worker processes the daemon's.
  process.env['NODE_OPTIONS'] = `--import=${TRACE}`;
  process.env['LANHA_MODULE_TRACE'] = join(scratch.dir, 'trace-%p.txt');
  let daemon;
  try {
    daemon = await serveDaemon(scratch.file, { timeoutMs: 90_000 });
  } finally {
    delete process.env['NODE_OPTIONS'];
    delete process.env['LANHA_MODULE_TRACE'];
  }
  t.teardown(() => daemon.stop());

  const status = await runLanctl(['status', '--json', '--socket', join(scratch.dir, 's.sock')]);
  t.equal(status.code, 0, 'status answers', { stderr: status.stderr });
  const pids = (JSON.parse(status.stdout) as { services: { dns: { workers: { pids: number[] } } } }).services.dns.workers.pids;
  t.equal(pids.length, 1, 'one DNS worker process runs');

  const mine = traced(scratch.dir, daemon.child.pid!, 'bin/lanctl.js');
  t.ok(mine.includes('bin/daemon.js') && mine.includes('services/dns/server.js'), 'the trace saw the daemon start', { count: mine.length });
  t.same(mine.filter((m) => SCHEMAS.some((x) => x.test(m))), [], 'the daemon loaded no config schema (zod stays in the config check\'s process)');

  const worker = traced(scratch.dir, pids[0]!, 'services/dns/udp-worker.js');
  t.ok(worker.includes('services/dns/udp-worker.js'), 'the trace saw the worker start', { count: worker.length });
  t.same(worker.filter((m) => !WORKER_MODULES.has(m)), [], 'the DNS worker loaded nothing outside its UDP serving path');
});
