import t from 'tap';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { DNS_WORKER_NODE_FLAGS } from '../../lib/memory.js';
import { runLanctl, scratchConfig, serveDaemon } from '../../test/support/daemon.js';
import { parseConfig } from '../../config/index.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { which } from '../../lib/netns.js';
import { ephemeralPorts, freePort } from '../../test/support/ports.js';
import { SHARE_MESSAGE_MS, ShareBudget, ShareThrottle, UdpWorkers } from './udp-workers.js';
import type { ZoneSetInput } from './zone.js';
import { ForwardCache, type WireEntry } from './cache.js';
import { answerA } from '../../test/support/dns-upstream.js';
import { CLASS_IN, T, decodeMessage, emptyMessage, encodeMessage, type DnsMessage } from './wire.js';

// UDP worker processes on real loopback sockets. Each socket is handed to the workers and then
// closed in this process, so every answer below comes from a worker: zones sent over IPC, updates,
// forwarding (asked upstream by the worker, cached answers shared both ways), counters, a killed
// worker started again with the current zones, stop;
// and with a real daemon: the worker ends with it, whether it stops or is killed.

t.test('the share budget passes a second\'s worth at once, then the rate, never more', async (t) => {
  const b = new ShareBudget(10);
  let passed = 0;
  for (let i = 0; i < 50; i++) if (b.take(1_000)) passed++;
  t.equal(passed, 10, 'a burst of 50 at one instant: 10 passed');
  t.notOk(b.take(1_050), 'half a token after 50 ms: none');
  t.ok(b.take(1_100), 'one token after 100 ms');
  passed = 0;
  for (let ms = 1_100; ms < 11_100; ms += 10) if (b.take(ms)) passed++;
  t.ok(passed >= 99 && passed <= 101, `10 s at one try per 10 ms: the rate, ~100 (${passed})`);
});

/** A fake upstream resolver: every question gets A 192.0.2.7 (TTL 300); `asked` counts them. */
const upstream = dgram.createSocket('udp4');
let asked = 0;
upstream.on('message', (msg, rinfo) => {
  const r = answerA(msg, 300, [192, 0, 2, 7]);
  if (r === null) return;
  asked++;
  upstream.send(r, rinfo.port, rinfo.address);
});
await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', () => resolve()));
t.teardown(() => upstream.close());

const config = ephemeralPorts(parseConfig(`
node: { name: unit, role: server, address: 127.0.0.1, stateDir: /nonexistent, controlSocket: /nonexistent.sock }
dns:
  listen: [127.0.0.1]
  forward: { upstreams: ["127.0.0.1:${upstream.address().port}"], allow: [127.0.0.0/8] }
`));
const cfg = config.dns!;

function zonesWith(address: string, serial: number): ZoneSetInput {
  return {
    zones: [{ name: 'lan', ttl: 3_600_000, negativeTtl: 60_000, records: [`www A ${address}`], leases: false }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial,
  };
}

async function bound(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  return s;
}

/**
 * Asks `name` A at `port` once; the decoded answer, or null after `waitMs`. The default is long: a
 * test expecting an answer waits for it (a loaded machine answered after more than a second); one
 * expecting none passes its own short wait.
 */
async function ask(port: number, name: string, waitMs = 15_000): Promise<DnsMessage | null> {
  const m = emptyMessage(0x4242);
  m.questions = [{ name, type: T.A, class: CLASS_IN }];
  const c = await bound();
  return new Promise((resolve) => {
    const timer = setTimeout(() => { c.close(); resolve(null); }, waitMs);
    c.on('message', (b) => {
      clearTimeout(timer);
      c.close();
      const d = decodeMessage(b);
      resolve(d.ok ? d.value : null);
    });
    c.send(encodeMessage(m).bytes, port, '127.0.0.1');
  });
}

const addressOf = (m: DnsMessage | null): string => (m?.answers[0] ? [...m.answers[0].rdata].join('.') : 'none');

/**
 * Waits until every worker has handled every message sent to it before: the IPC channel to a
 * worker is in order, and a serve and an unserve are each answered. The unserve also sends the
 * worker's counters first, so after this `counters()` is current (no sleeping for the once-a-second
 * report, which a loaded machine delivers late).
 */
async function settled(workers: UdpWorkers): Promise<void> {
  // Each answer is waited for by what it changes: serve() and unserve() resolve after 2 s without it.
  const scratch = await bound();
  await workers.serve('127.0.0.99', scratch);
  await eventually(() => workers.readers('127.0.0.99') === workers.running);
  await workers.unserve('127.0.0.99');
  await eventually(() => workers.readers('127.0.0.99') === 0);
  scratch.close();
}

/**
 * start(), then every worker ready: start() stops waiting for one after 10 s and starts it again,
 * which a loaded machine needed; a socket handed over before then would reach none.
 */
async function started(workers: UdpWorkers, count: number): Promise<boolean> {
  await workers.start();
  return eventually(() => workers.running === count, 60_000);
}

/** The addresses of 20 answers in a row for www.lan (the workers share the socket: both answer some). */
async function twentyAnswers(port: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 20; i++) out.push(addressOf(await ask(port, 'www.lan')));
  return out;
}

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) if (await check()) return true;
  return check();
}

t.test('workers answer from the daemon\'s sockets, follow zone updates, forward and share cached answers, restart when killed', async (t) => {
  let zones = zonesWith('10.0.0.1', 1);
  // What the daemon cached before a worker was ready: each worker gets it when it starts.
  const early = new ForwardCache(cfg.forward!.cacheSize);
  early.put({ name: 'early.example', type: T.A, class: CLASS_IN },
    { rcode: 0, answers: [{ name: 'early.example', type: T.A, class: CLASS_IN, ttl: 300, rdata: Uint8Array.of(192, 0, 2, 11) }], authority: [], additional: [] }, 0);
  const sockets = new Map<string, dgram.Socket>();
  const cached: WireEntry[] = [];
  const workers = new UdpWorkers({
    count: 2,
    log: silentLogger,
    init: () => ({ t: 'init', cfg, nodeName: 'unit', logLevel: 'silent', processes: 3, zones }),
    sockets: () => sockets,
    onCached: (entry) => cached.push(entry),
    cached: () => early.snapshot(0),
  });
  t.teardown(() => workers.stop());
  t.ok(await started(workers, 2), 'two workers serving');
  const pids = workers.pids();
  t.equal(pids.length, 2);

  const first = await bound();
  const port = first.address().port;
  await workers.serve('127.0.0.1', first);
  first.close(); // from here on only the workers read this port

  const answers = [];
  for (let i = 0; i < 20; i++) answers.push(addressOf(await ask(port, 'www.lan')));
  t.same(new Set(answers), new Set(['10.0.0.1']), '20 answers, all from the zone the workers were given');

  zones = zonesWith('10.0.0.2', 2);
  workers.zones(zones);
  t.ok(await eventually(async () => addressOf(await ask(port, 'WWW.lan')) === '10.0.0.2'), 'a zone update reaches the workers');
  // The first new answer says one worker has the update; the other applies it when its own message
  // is read: 20 answers in a row, all new, say every worker serves it (one left behind never does).
  t.ok(await eventually(async () => (await twentyAnswers(port)).every((a) => a === '10.0.0.2')), 'every worker serves the update');

  // A burst of big updates (an import: each change a rebuild of every name): one message per worker
  // is on its way at a time and only the latest waits, and the latest is what both workers serve.
  const big = (n: number): ZoneSetInput => ({ ...zonesWith(`10.0.1.${n}`, 100 + n), zones: [{ ...zonesWith(`10.0.1.${n}`, 0).zones[0]!, records: [`www A 10.0.1.${n}`, ...Array.from({ length: 3000 }, (_, i) => `h${i} A 10.1.${i >> 8}.${i & 255}`)] }] });
  await settled(workers);
  const updatesBefore = workers.counters().get('dns.zones_updates') ?? 0;
  for (let n = 1; n <= 60; n++) workers.zones(big(n));
  t.ok(await eventually(async () => addressOf(await ask(port, 'www.lan')) === '10.0.1.60'), 'after 60 updates at once the workers serve the last');
  t.ok(await eventually(async () => (await twentyAnswers(port)).every((a) => a === '10.0.1.60')), 'both of them: none is left on an older version');
  await settled(workers);
  const updates = (workers.counters().get('dns.zones_updates') ?? 0) - updatesBefore;
  t.equal(updates, 4, 'the two workers applied 4 zone sets for 60 updates (each the first and then the latest, not every one)');
  workers.zones(zones);
  t.ok(await eventually(async () => addressOf(await ask(port, 'www.lan')) === '10.0.0.2'), 'and the next update after the burst still goes out');

  t.equal(addressOf(await ask(port, 'example.com', 3000)), '192.0.2.7', 'a forwarded name is asked upstream by the worker');
  t.ok(await eventually(() => cached.length === 1), 'the answer it cached is reported to the daemon');
  await settled(workers); // and the other worker has it (the daemon passed it on as it came)
  for (let i = 0; i < 10; i++) t.equal(addressOf(await ask(port, 'EXAMPLE.com')), '192.0.2.7');
  t.equal(asked, 1, 'both workers answer it from their caches: asked upstream once');
  const daemonCache = new ForwardCache(cfg.forward!.cacheSize);
  const entry = daemonCache.put({ name: 'filled.example', type: T.A, class: CLASS_IN },
    { rcode: 0, answers: [{ name: 'filled.example', type: T.A, class: CLASS_IN, ttl: 300, rdata: Uint8Array.of(192, 0, 2, 9) }], authority: [], additional: [] }, 0)!;
  workers.cacheFill(entry);
  // Within SHARE_MESSAGE_MS of the entry passed on above it waits for the interval's end; then the
  // IPC channel's order. A query that beat the entry would be asked upstream, and its answer would win.
  await new Promise((r) => setTimeout(r, SHARE_MESSAGE_MS + 10));
  await settled(workers);
  t.equal(addressOf(await ask(port, 'filled.example')), '192.0.2.9', 'an answer the daemon cached is served by the workers');
  for (let i = 0; i < 6; i++) t.equal(addressOf(await ask(port, 'filled.example')), '192.0.2.9');
  t.equal(asked, 1, 'without asking upstream');

  await settled(workers);
  t.ok((workers.counters().get('dns.queries') ?? 0) >= 42, 'worker counters reach the daemon');

  // A killed worker comes back with the current zones and the daemon's sockets.
  const second = await bound();
  const port2 = second.address().port;
  sockets.set('127.0.0.1', second);
  process.kill(pids[0]!, 'SIGKILL');
  t.ok(await eventually(() => workers.running === 1), 'the killed worker is noticed');
  t.ok(await eventually(() => workers.running === 2 && !workers.pids().includes(pids[0]!)), 'and started again');
  t.equal(workers.counters().get('dns.workers.exited'), 1, 'the exit is counted');
  second.close(); // only the new worker was handed this socket
  t.equal(addressOf(await ask(port2, 'www.lan')), '10.0.0.2', 'the new worker answers from the current zones');
  const askedBefore = asked;
  t.equal(addressOf(await ask(port2, 'early.example')), '192.0.2.11', 'and from what the daemon had cached before it started');
  t.equal(asked, askedBefore, 'without asking upstream');

  await workers.unserve('127.0.0.1');
  t.equal(await ask(port2, 'www.lan', 300), null, 'after unserve nobody reads the socket');

  const live = workers.pids();
  await workers.stop();
  for (const pid of live) t.throws(() => process.kill(pid, 0), 'worker process gone after stop');
});

t.test('the throttle: the first entry after a quiet spell at once, then at most one flush per interval', async (t) => {
  let nowMs = 1_000;
  const timers: Array<{ at: number; run: () => void }> = [];
  const flushes: number[] = [];
  const throttle = new ShareThrottle(() => flushes.push(nowMs), {
    intervalMs: 50, nowMs: () => nowMs, later: (run, ms) => { const tm = { at: nowMs + ms, run }; timers.push(tm); return tm; },
    cancel: (tm) => timers.splice(timers.indexOf(tm as typeof timers[number]), 1),
  });
  const advance = (toMs: number): void => {
    for (let tm = timers.find((x) => x.at <= toMs); tm !== undefined; tm = timers.find((x) => x.at <= toMs)) {
      timers.splice(timers.indexOf(tm), 1);
      nowMs = tm.at;
      tm.run();
    }
    nowMs = toMs;
  };
  throttle.queued();
  t.same(flushes, [1_000], 'a lone entry goes at once');
  for (let ms = 1_001; ms < 2_000; ms++) { advance(ms); throttle.queued(); }
  advance(2_100);
  t.equal(flushes.length, 21, 'a second of one entry a millisecond: the first at once, then one flush per 50 ms');
  t.ok(flushes.every((at, i) => i === 0 || at - flushes[i - 1]! >= 50), 'never two within 50 ms');
  advance(5_000);
  throttle.queued();
  t.equal(flushes.at(-1), 5_000, 'after a quiet spell the next goes at once again');
  advance(5_010);
  throttle.queued();
  t.equal(timers.length, 1, 'one within the interval waits for its end');
  throttle.cancel();
  advance(6_000);
  t.equal(flushes.at(-1), 5_000, 'cancelled: not flushed');
});

t.test('a flood of misses reaches the daemon in a few messages, not one per miss', async (t) => {
  const cached: WireEntry[] = [];
  // The entries of one IPC message are handed over in one go, before the next message's event.
  let grouped = 0, open = false;
  const workers = new UdpWorkers({
    count: 1, log: silentLogger,
    init: () => ({ t: 'init', cfg, nodeName: 'unit', logLevel: 'silent', processes: 2, zones: zonesWith('10.0.0.1', 1) }),
    sockets: () => new Map(),
    onCached: (entry) => {
      cached.push(entry);
      if (!open) { grouped++; open = true; queueMicrotask(() => { open = false; }); }
    },
  });
  t.teardown(() => workers.stop());
  t.ok(await started(workers, 1), 'one worker serving');
  const socket = await bound();
  const port = socket.address().port;
  await workers.serve('127.0.0.1', socket);
  socket.close();
  // One unique name a millisecond (each miss a turn of the worker's event loop of its own, as at
  // 4,000 misses a second), answered by the fake upstream.
  const client = await bound();
  let answered = 0;
  client.on('message', () => { answered++; });
  const started0 = performance.now();
  for (let i = 0; i < 300; i++) {
    const m = emptyMessage(i);
    m.questions = [{ name: `flood${i}.example`, type: T.A, class: CLASS_IN }];
    client.send(encodeMessage(m).bytes, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 1));
  }
  t.ok(await eventually(() => answered === 300), 'every miss answered');
  await new Promise((r) => setTimeout(r, 3 * SHARE_MESSAGE_MS));
  const elapsedMs = performance.now() - started0;
  client.close();
  const c = workers.counters();
  const messages = c.get('dns.workers.shared_messages') ?? 0;
  const entries = c.get('dns.workers.shared_entries') ?? 0;
  t.ok(cached.length >= 150, `the budget's worth of entries shared (${cached.length})`);
  t.ok(grouped <= 2 + elapsedMs / SHARE_MESSAGE_MS, `in ${grouped} messages over ${Math.round(elapsedMs)} ms: at most one per ${SHARE_MESSAGE_MS} ms (one per miss before: as many messages as entries)`);
  t.same([messages, entries], [grouped, cached.length], 'counted: dns.workers.shared_messages, dns.workers.shared_entries');
});

// A worker that stops answering (SIGSTOP here: stopped, or a loop that never yields) is read around
// once silent (the daemon takes its sockets back), and once silent for hungMs it is killed and
// started again with the current zones and sockets.
t.test('a hung worker is read around, then killed and started again', async (t) => {
  // Every change of the count of readers, in order: a loaded test can look later than a change
  // and its undoing (the silent worker killed and its successor reading).
  const readers: number[] = [];
  const sockets = new Map<string, dgram.Socket>();
  const workers = new UdpWorkers({
    count: 1, log: silentLogger, hungMs: 6_000,
    init: () => ({ t: 'init', cfg, nodeName: 'unit', logLevel: 'silent', processes: 2, zones: zonesWith('10.0.0.3', 1) }),
    sockets: () => sockets, onCached: () => undefined,
    onReaders: () => { readers.push(workers.readers('127.0.0.1')); },
  });
  t.teardown(() => workers.stop());
  t.ok(await started(workers, 1), 'the worker runs');
  const s = await bound();
  sockets.set('127.0.0.1', s);
  await workers.serve('127.0.0.1', s);
  t.ok(await eventually(() => workers.readers('127.0.0.1') === 1), 'the worker reads the socket');
  const [pid] = workers.pids();
  readers.length = 0;
  process.kill(pid!, 'SIGSTOP');
  t.teardown(() => { try { process.kill(pid!, 'SIGCONT'); } catch { /* killed, as it should be */ } });
  t.ok(await eventually(() => readers.includes(0)), 'once silent it no longer counts as reading (the daemon reads its socket)');
  t.ok(await eventually(() => (workers.counters().get('dns.workers.hung') ?? 0) === 1, 30_000), 'silent for hungMs: judged hung');
  t.ok(await eventually(() => workers.running === 1 && !workers.pids().includes(pid!)), 'killed and started again');
  t.throws(() => process.kill(pid!, 0), 'the stopped process is gone');
  t.ok(await eventually(() => workers.readers('127.0.0.1') === 1), 'the new worker reads the socket');
  const port = s.address().port;
  s.close(); // only the worker holds it now
  t.equal(addressOf(await ask(port, 'www.lan')), '10.0.0.3', 'and answers from the current zones');
});

t.test('each process enforces its share of the response rate limit', async (t) => {
  const limited = parseConfig(`
node: { name: unit, role: server, address: 127.0.0.1, stateDir: /nonexistent, controlSocket: /nonexistent.sock }
dns: { rateLimit: { responsesPerSecond: 2, slip: 0 } }
`).dns!;
  const workers = new UdpWorkers({
    count: 1, log: silentLogger,
    init: () => ({ t: 'init', cfg: limited, nodeName: 'unit', logLevel: 'silent', processes: 2, zones: zonesWith('10.0.0.1', 1) }),
    sockets: () => new Map(), onCached: () => undefined,
  });
  t.teardown(() => workers.stop());
  t.ok(await started(workers, 1), 'the worker runs');
  const s = await bound();
  const port = s.address().port;
  await workers.serve('127.0.0.1', s);
  s.close();
  const c = await bound();
  let got = 0;
  c.on('message', () => got++);
  const m = emptyMessage(1);
  m.questions = [{ name: 'www.lan', type: T.A, class: CLASS_IN }];
  for (let i = 0; i < 10; i++) c.send(encodeMessage(m).bytes, port, '127.0.0.1');
  // The worker may be slow to get to the burst on a loaded machine: wait for its answer (up to 15 s),
  // then a little longer for any that should not come. At 1/s in the worker a second answer needs
  // the ten queries of one read spread over a second (2/s, as this was, took half of one).
  for (let waited = 0; got < 1 && waited < 15_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  c.close();
  t.equal(got, 1, 'a limit of 2/s over two processes is 1/s in each');
});

t.test('a worker never outlives the daemon: gone after SIGTERM and after kill -9', async (t) => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const scratch = scratchConfig(`node: { name: t, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dns: { port: ${await freePort()}, listen: [127.0.0.1], workers: 1, zones: [{ name: lan, records: ["www A 10.0.0.1"] }] }
`);
    t.teardown(scratch.cleanup);
    const daemon = await serveDaemon(scratch.file);
    try {
      type Workers = { running: number; pids: number[] };
      let dns: { workers: Workers } = { workers: { running: 0, pids: [] } };
      // The daemon is up before its worker is (a loaded machine took seconds): asked until it runs.
      t.ok(await eventually(async () => {
        const status = await runLanctl(['status', '--json', '--socket', join(scratch.dir, 's.sock')]);
        dns = (JSON.parse(status.stdout) as { services: { dns: { workers: Workers } } }).services.dns;
        return dns.workers.running === 1;
      }, 60_000), 'the daemon runs one UDP worker');
      const pid = dns.workers.pids[0]!;
      t.doesNotThrow(() => process.kill(pid, 0), 'worker alive');
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      t.same(argv.slice(1, 1 + DNS_WORKER_NODE_FLAGS.length), DNS_WORKER_NODE_FLAGS, 'the worker runs with its V8 flags');
      await daemon.stop(signal);
      t.ok(await eventually(() => { try { process.kill(pid, 0); return false; } catch { return true; } }), `worker gone after the daemon's ${signal}`);
    } finally {
      await daemon.stop('SIGKILL');
    }
  }
});

t.test('LANHA_DNS_WORKER_NODE_FLAGS that are not V8 heap or GC flags stop the start, named', async (t) => {
  const scratch = scratchConfig(`node: { name: t, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dns: { port: ${await freePort()}, listen: [127.0.0.1], workers: 1, zones: [{ name: lan, records: ["www A 10.0.0.1"] }] }
`);
  t.teardown(scratch.cleanup);
  const run = await runLanctl(['serve', '--config', scratch.file], { env: { ...process.env, LANHA_DNS_WORKER_NODE_FLAGS: '--max-semi-space-size=4 --inspect' } });
  t.not(run.code, 0, 'the daemon does not start');
  t.match(run.stdout + run.stderr, /LANHA_DNS_WORKER_NODE_FLAGS: "--inspect" is not one of the DNS worker's V8 flags/);
});

t.test('a worker slower to start than its ready wait gets twice the wait next time, instead of being killed just before it is ready for good', async (t) => {
  // A worker module that takes 1.5 s before the real one loads, against a first wait of 1 s: the
  // first incarnation is killed, the next waits 2 s and gets ready. With a fixed wait every
  // incarnation would be killed (what a loaded machine did with the fixed 10 s).
  const dir = mkdtempSync(join(tmpdir(), 'lanha-slow-worker-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const real = new URL('./udp-worker.js', import.meta.url).href;
  const module = join(dir, 'slow-worker.mjs');
  writeFileSync(module, `await new Promise((r) => setTimeout(r, 1500));\nawait import(${JSON.stringify(real)});\n`);
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const workers = new UdpWorkers({
    count: 1, log, readyTimeoutMs: 1_000, module: new URL(`file://${module}`),
    init: () => ({ t: 'init', cfg, nodeName: 'unit', logLevel: 'silent', processes: 2, zones: zonesWith('10.0.0.1', 1) }),
    sockets: () => new Map(), onCached: () => undefined,
  });
  t.teardown(() => workers.stop());
  t.ok(await started(workers, 1), 'the worker runs in the end');
  const notReady = lines.filter((l) => l['event'] === 'dns.worker_not_ready');
  t.ok(notReady.length >= 1, `the first incarnation was killed for not being ready (${notReady.length} killed)`);
  t.same(notReady.map((l) => l['waitMs']), notReady.map((_, i) => 1_000 * 2 ** i), 'each one killed had twice the wait of the one before');
  t.equal(notReady[0]?.['nextWaitMs'], 2_000, 'and said what the next one gets');
});

t.test('a worker that cannot be forked for want of descriptors is started again once they are free (a failed fork has no exit)', async (t) => {
  if (!which('prlimit')) { process.stderr.write('\n*** SKIPPED udp-workers descriptor test: no prlimit\n'); t.pass('SKIPPED: no prlimit'); return; }
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const workers = new UdpWorkers({
    count: 1, log,
    init: () => ({ t: 'init', cfg, nodeName: 'unit', logLevel: 'silent', processes: 2, zones: zonesWith('10.0.0.1', 1) }),
    sockets: () => new Map(), onCached: () => undefined,
  });
  t.teardown(() => workers.stop());
  t.ok(await started(workers, 1), 'the worker runs');
  const pid = workers.pids()[0]!;
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  const held: number[] = [];
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${readdirSync('/proc/self/fd').length + 40}:${hard}`]);
    try { for (let i = 0; i < 100_000; i++) held.push(openSync('/dev/null', 'r')); } catch { /* EMFILE: every descriptor taken */ }
    process.kill(pid, 'SIGKILL');
    // Its restart comes 1 s after the exit and fails (EMFILE for the new process's pipes): waited
    // for by its line, however late a loaded machine gets to it, before descriptors are given back.
    const said = (): boolean => lines.some((l) => l['event'] === 'dns.workers.fd_exhausted');
    t.ok(await eventually(said, 30_000), 'the failed restart is said while descriptors are out');
    t.equal(workers.running, 0, 'no worker while descriptors are out');
  } finally {
    for (const fd of held) closeSync(fd);
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`]);
  }
  t.ok(await eventually(async () => workers.running === 1, 15_000), 'the worker runs again once descriptors are free (a failed fork was never tried again)');
  t.match(lines.filter((l) => l['event'] === 'dns.workers.fd_exhausted'), [{ what: 'worker', code: 'EMFILE' }], 'the shortage is said');
});
