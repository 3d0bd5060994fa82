// Hostile input and resource exhaustion against whole running daemons (`lanctl serve`), every
// listening surface, on loopback and high ports (test/fuzz/ covers the codecs in-process). After each
// attack the daemon must still be running, answer real clients (dig over UDP and TCP, curl tftp://,
// a DHCP DORA, chronyd -Q, lanctl status, the HTTP listener), have counted what it dropped, and keep
// its memory and descriptors bounded (loose bounds). Attackers speak from 127.0.0.9 and up, so the
// per-source shares they exhaust are not the real clients' (127.0.0.1). Every loop is bounded.
// The Raft peer port of a cluster: hostile-raft.test.ts.
import t from 'tap';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { logRecords, runLanctl, scratchConfig, serveDaemon, type ServedDaemon } from '../support/daemon.js';
import { freePorts } from '../support/ports.js';
import { haveTools, runTool } from '../support/tools.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';
import { BootOp, emptyMessage, encodeDhcp } from '../../services/dhcp/wire.js';
import { decodeNtp } from '../../services/ntp/wire.js';

t.setTimeout(600_000);
/** Each attack's own bound: a hang names the surface, and the attacks after it still run. */
const ATTACK = { timeout: 150_000 };

/**
 * `lanctl` here is a fresh Node process: ~0.55 s of CPU (module loading and GC, measured with
 * --cpu-prof) that on this 2-core machine at load 17-20 (the suite beside the attacks) ran past
 * runLanctl's 20 s default, while the daemon answered the same request over its socket in 0.1-0.2 s
 * at load 16. The limit is raised for the CLI only; the daemon's own answer time is checked apart
 * (daemonAnsweredInTime), so a slow daemon still fails.
 */
const CLI_LIMIT_MS = 90_000;
const lanctl = (args: readonly string[]): ReturnType<typeof runLanctl> => runLanctl(args, { timeoutMs: CLI_LIMIT_MS });
/** The daemon's own answer to a `lanctl status` (control.answers: from the request's arrival to its last byte). */
const DAEMON_ANSWER_MS = 2000;

/** The few assertions the helpers use, from whichever (sub)test calls them. */
interface Check {
  ok(value: unknown, message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
  match(found: unknown, pattern: RegExp, message: string): unknown;
  teardown(fn: () => unknown): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const running = (d: ServedDaemon): boolean => d.child.exitCode === null && d.child.signalCode === null;

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; await sleep(100)) if (await cond()) return true;
  return cond();
}

/**
 * A TCP connection from `local`, resolved once connected or closed; errors are the attacker's. A
 * connection still unanswered after 5 s (a full listen queue drops SYNs, and the kernel retries them
 * for two minutes) is given up and destroyed: the loops below make up to 200 of these in a row.
 */
async function connectFrom(port: number, local: string, path?: string): Promise<net.Socket> {
  const s = path === undefined ? net.connect({ port, host: '127.0.0.1', localAddress: local }) : net.connect(path);
  s.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((r) => {
    s.once('connect', () => r());
    s.once('close', () => r());
    timer = setTimeout(() => { s.destroy(); r(); }, 5000);
  });
  clearTimeout(timer);
  return s;
}

/** Sends `bytes` on a fresh connection and collects what comes back within `ms`. */
async function exchange(bytes: Buffer, ms: number, to: { port?: number; path?: string }): Promise<string> {
  const s = to.path === undefined ? net.connect({ port: to.port!, host: '127.0.0.1', localAddress: '127.0.0.9' }) : net.connect(to.path);
  let got = '';
  s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  s.on('error', () => undefined);
  s.on('connect', () => s.write(bytes));
  await new Promise<void>((resolve) => { s.once('close', () => resolve()); setTimeout(resolve, ms); });
  s.destroy();
  return got;
}

function httpGet(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface Solo {
  d: ServedDaemon;
  dir: string;
  file: string;
  dns: number;
  dhcp: number;
  tftp: number;
  ntp: number;
  http: number;
  macs: number;
}

async function status(s: { file: string }): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await lanctl(['status', '--json', '--config', s.file]);
  if (r.code !== 0) throw new Error(`lanctl status failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

type Surface = 'dns' | 'tftp' | 'dhcp' | 'ntp' | 'http' | 'control';
const EVERY: readonly Surface[] = ['dns', 'tftp', 'dhcp', 'ntp', 'http', 'control'];

/** The daemon runs and each named surface answers a well-formed request from a real client. */
async function healthy(t: Check, s: Solo, after: string, surfaces: readonly Surface[] = EVERY): Promise<void> {
  t.ok(running(s.d), `${after}: the daemon is still running`);
  const dig = async (tcp: boolean): Promise<string> => (await runTool('dig', [...(tcp ? ['+tcp'] : []), '+short', '+time=3', '+tries=2', '-p', String(s.dns), '@127.0.0.1', 'www.lh.lan'])).out.trim();
  if (surfaces.includes('dns')) {
    t.equal(await dig(false), '127.0.0.80', `${after}: dig over UDP`);
    t.equal(await dig(true), '127.0.0.80', `${after}: dig over TCP`);
  }
  if (surfaces.includes('tftp')) {
    const tftp = await runTool('curl', ['-s', '--max-time', '10', `tftp://127.0.0.1:${s.tftp}/hello.txt`]);
    t.equal(tftp.out, 'hello\n', `${after}: curl tftp://`);
  }
  if (surfaces.includes('dhcp')) {
    const mac = `52:54:00:aa:00:${(s.macs++).toString(16).padStart(2, '0')}`;
    const dora = await dhcpProbe({ server: '127.0.0.1', port: s.dhcp, mac, relay: '127.0.0.2', timeoutMs: 8000 }).then((r) => r.acked, (e: Error) => e.message);
    t.match(dora, /^127\.0\.\d+\.\d+$/, `${after}: a DHCP DORA (${mac})`);
  }
  if (surfaces.includes('ntp')) {
    const ntp = await runTool('chronyd', ['-Q', '-t', '8', '-f', '/dev/null', `server 127.0.0.1 port ${s.ntp} iburst maxsamples 1`], 15_000);
    t.match(ntp.out, /System clock wrong by/, `${after}: chronyd -Q got a time`);
  }
  if (surfaces.includes('http')) t.equal(await httpGet(s.http, '/v1/status'), 200, `${after}: the HTTP listener`);
  if (surfaces.includes('control')) {
    const started = performance.now();
    t.equal((await lanctl(['status', '--config', s.file])).code, 0, `${after}: lanctl status`);
    await daemonAnsweredInTime(t, s, after, performance.now() - started);
  }
}

/**
 * The daemon's own time for the `lanctl status` just run (its control socket's answer times, read
 * over the socket from this process: no CLI start in the way) is within DAEMON_ANSWER_MS: the CLI's
 * raised limit hides no slow daemon. `cliMs` is the whole CLI run, for the message.
 */
async function daemonAnsweredInTime(t: Check, s: Solo, after: string, cliMs: number): Promise<void> {
  const started = performance.now();
  const body = await new Promise<string>((resolve) => {
    const req = request({ socketPath: join(s.dir, 's.sock'), path: '/v1/status', timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve(text));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
    req.end();
  });
  const directMs = Math.round(performance.now() - started);
  let lastMs: number | undefined;
  try { lastMs = (JSON.parse(body) as { control?: { answers?: Record<string, { lastMs: number }> } }).control?.answers?.['GET /v1/status']?.lastMs; } catch { /* not JSON: fails below */ }
  t.ok(lastMs !== undefined && lastMs < DAEMON_ANSWER_MS,
    `${after}: the daemon answered lanctl status in ${lastMs} ms (under ${DAEMON_ANSWER_MS}; the whole CLI run took ${Math.round(cliMs)} ms, a direct request ${directMs} ms)`);
}

async function startSolo(t: Check): Promise<Solo> {
  const [dns, tftp, ntp, http] = await freePorts(4);
  const dhcp = 20000 + Math.floor(Math.random() * 20000);
  const sc = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
http: { listen: "127.0.0.1:${http}" }
dhcp:
  port: ${dhcp}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.40.10-127.0.40.250]
      domain: lh.lan
      leaseTime: 1h
dns:
  port: ${dns}
  zones: [{ name: lh.lan, leases: true, records: ["ns A 127.0.0.1", "www A 127.0.0.80"] }]
tftp: { port: ${tftp}, listen: [127.0.0.1], root: "{{dir}}/tftp" }
ntp: { port: ${ntp}, localStratum: 10 }
`);
  mkdirSync(join(sc.dir, 'tftp'));
  writeFileSync(join(sc.dir, 'tftp', 'hello.txt'), 'hello\n');
  writeFileSync(join(sc.dir, 'tftp', 'big.bin'), randomBytes(1 << 20));
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(async () => { await d.stop(); sc.cleanup(); });
  return { d, dir: sc.dir, file: sc.file, dns: dns!, dhcp, tftp: tftp!, ntp: ntp!, http: http!, macs: 1 };
}

t.test('one daemon, every listening surface attacked in turn', async (t) => {
  if (!haveTools(t, ['dig', 'curl', 'chronyd', 'prlimit'], 'hostile daemon test')) return;
  const s = await startSolo(t);
  const pid = s.d.child.pid!;
  await healthy(t, s, 'at start');
  const rssBefore = rssKb(pid);
  const fdsBefore = fdCount(pid);

  await t.test('DNS over UDP: empty, short, compression loops, lying EDNS, other opcodes, 64 KB, random', ATTACK, async (t) => {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.9', r));
    const hdr = (qd: number, ar: number): Buffer => Buffer.from([0xab, 0xcd, 1, 0, 0, qd, 0, 0, 0, 0, 0, ar]);
    const www = Buffer.from([3, 119, 119, 119, 2, 108, 104, 3, 108, 97, 110, 0, 0, 1, 0, 1]);
    const cases = [
      Buffer.alloc(0), Buffer.from([1]), hdr(1, 0),
      Buffer.concat([hdr(1, 0), Buffer.from([0xc0, 12, 0, 1, 0, 1])]), // a name pointing at itself
      Buffer.concat([hdr(1, 0), Buffer.from([1, 97, 0xc0, 12, 0, 1, 0, 1])]), // a loop through a label
      Buffer.concat([hdr(1, 1), www, Buffer.from([0, 0, 41, 0xff, 0xff, 0, 0, 0x80, 0, 0, 50, 0, 10, 0, 99])]), // OPT rdlength past the end
      Buffer.concat([hdr(1, 2), www, Buffer.from([0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0])]), // two OPTs
      Buffer.concat([hdr(1, 1), www, Buffer.from([0, 0, 41, 0, 0, 5, 1, 0x80, 0, 0, 4, 0, 8, 0, 0])]), // EDNS version 1, bad option
      Buffer.concat([hdr(1, 0), Buffer.from([2, 108, 104, 3, 108, 97, 110, 0, 0, 252, 0, 1])]), // AXFR over UDP
      Buffer.from([0xab, 0xcd, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]), // a response
      Buffer.from([0xab, 0xcd, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]), // UPDATE
      Buffer.alloc(65_000, 0x41),
    ];
    for (const c of cases) u.send(c, s.dns, '127.0.0.1');
    for (let i = 0; i < 5000; i++) {
      const b = randomBytes(12 + (i % 200));
      if (i % 2 === 1) { b[2] = b[2]! & 0x7f; b[4] = 0; b[5] = 1; }
      u.send(b, s.dns, '127.0.0.1');
      if (i % 500 === 0) await sleep(10);
    }
    await sleep(500);
    u.close();
    await healthy(t, s, 'after DNS UDP garbage', ['dns']);
  });

  await t.test('DNS over TCP: partial and zero length prefixes, a hog, pipelined queries never read', ATTACK, async (t) => {
    for (const bytes of [Buffer.from([0]), Buffer.from([0, 0, 0, 0]), Buffer.from([0xff, 0xff, 1, 2, 3]), Buffer.from([0, 12, ...new Array(12).fill(0)])]) {
      await exchange(bytes, 300, { port: s.dns });
    }
    const hog: net.Socket[] = [];
    for (let i = 0; i < 100; i++) hog.push(await connectFrom(s.dns, '127.0.0.9'));
    const open = (): number => hog.filter((c) => !c.destroyed && !c.closed).length;
    t.ok(await until(() => open() <= 32), `one source keeps at most its share of connections (${open()} of 100 open)`);
    await healthy(t, s, 'while a source holds its whole TCP share', ['dns']);
    for (const c of hog) c.destroy();

    const q = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 2, 108, 104, 3, 108, 97, 110, 0, 0, 255, 0, 1]);
    const burst = Buffer.concat(Array.from({ length: 2000 }, () => Buffer.concat([Buffer.from([0, q.length]), q])));
    const readers = await Promise.all(Array.from({ length: 3 }, (_, i) => connectFrom(s.dns, `127.0.0.${10 + i}`)));
    let backlogMax = 0;
    await Promise.all(readers.map(async (c) => {
      c.pause(); // never read the answers
      for (let written = 0; written < 4 << 20 && !c.destroyed;) {
        written += burst.length;
        if (c.write(burst)) continue;
        const drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 3000);
          c.once('drain', () => { clearTimeout(timer); resolve(true); });
        });
        if (!drained) break;
      }
    }).concat((async () => {
      for (let i = 0; i < 5; i++) {
        backlogMax = Math.max(backlogMax, (await status(s))['services']['dns']['tcpBacklogBytes'] as number);
        await sleep(500);
      }
    })()));
    backlogMax = Math.max(backlogMax, (await status(s))['services']['dns']['tcpBacklogBytes'] as number);
    t.ok(backlogMax <= 3 << 20, `answers queued for clients that never read stay bounded (max seen ${backlogMax} bytes)`);
    const counters = (await status(s))['services']['dns']['counters'] as Record<string, number>;
    t.ok((counters['dns.tcp.paused_unread'] ?? 0) >= 1, 'the unread connections were paused and counted');
    t.ok((counters['dns.tcp.refused_per_source'] ?? 0) >= 1, 'the hog\'s extra connections were counted');
    for (const c of readers) c.destroy();
    await healthy(t, s, 'after DNS TCP abuse', ['dns', 'control']);
  });

  await t.test('DHCP: a flood of DISCOVERs from random MACs, truncated and overloaded options, random bytes', ATTACK, async (t) => {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.9', r));
    const base = (): ReturnType<typeof emptyMessage> => {
      const m = emptyMessage();
      m.op = BootOp.Request;
      m.xid = 7;
      m.hops = 1;
      m.giaddr = ((127 << 24) | 9) >>> 0;
      m.chaddr.set(randomBytes(6), 0);
      m.chaddr[0] = m.chaddr[0]! & 0xfe;
      return m;
    };
    for (let i = 0; i < 3000; i++) {
      const m = base();
      m.options.set(53, Uint8Array.of(1));
      m.options.set(60, new TextEncoder().encode('PXEClient:Arch:00000:UNDI:002001'));
      m.options.set(12, new TextEncoder().encode('h'.repeat(255)));
      m.options.set(82, randomBytes(1 + (i % 200)));
      u.send(encodeDhcp(m, 576), s.dhcp, '127.0.0.1');
      if (i % 250 === 0) await sleep(5);
    }
    const good = (() => { const m = base(); m.options.set(53, Uint8Array.of(1)); return Buffer.from(encodeDhcp(m, 576)); })();
    for (let n = 0; n < good.length; n += 7) u.send(good.subarray(0, n), s.dhcp, '127.0.0.1');
    for (let i = 0; i < 1000; i++) {
      const b = Buffer.from(good);
      b[240 + (i % 60)] = i & 0xff;
      b[241 + (i % 60)] = 0xff;
      u.send(b.subarray(0, 240 + (i % 80)), s.dhcp, '127.0.0.1');
      const o = Buffer.from(good); // option overload (52) pointing into file/sname full of garbage
      o.set([52, 1, 3, 53, 1, 1, 255], 240);
      randomBytes(192).copy(o, 44);
      u.send(o, s.dhcp, '127.0.0.1');
      u.send(randomBytes(1 + ((i * 7) % 1500)), s.dhcp, '127.0.0.1');
      if (i % 250 === 0) await sleep(5);
    }
    await sleep(1000);
    u.close();
    const dhcp = (await status(s))['services']['dhcp'] as { offers: number; counters: Record<string, number> };
    const malformed = Object.entries(dhcp.counters).filter(([k]) => k.startsWith('dropped.malformed')).reduce((n, [, v]) => n + v, 0);
    t.ok(malformed > 0, `malformed packets counted (${malformed})`);
    t.ok(dhcp.offers <= 241, `offers held in memory stay within the pool (${dhcp.offers})`);
    const pending = (await lanctl(['nodes', 'pending', '--json', '--config', s.file])).stdout;
    t.ok(pending.length < 1 << 20, `the pending netboot list stays bounded (${pending.length} bytes of JSON)`);
    // The flood's offers hold every pool address for the whole default offerTtl (30 s): the real
    // client's DORA is served from an offer taken back for it (allocator.ts #reclaim).
    t.ok((dhcp.counters['allocation-failed.pool-exhausted'] ?? 0) + (dhcp.counters['offer.reclaimed'] ?? 0) > 0, 'the flood ran the pool dry');
    await healthy(t, s, 'after the DHCP flood, its offers still held', ['dhcp']);
    t.ok(((await status(s))['services']['dhcp']['counters']['offer.reclaimed'] ?? 0) > 0, 'the DORA was served from an offer taken back');
  });

  await t.test('TFTP: an RRQ flood never acknowledged, bad options, ACKs and ERRORs for unknown transfers', ATTACK, async (t) => {
    const rrq = (file: string, opts: Record<string, string | number> = {}): Buffer => Buffer.concat([Buffer.from([0, 1]), Buffer.from(`${file}\0octet\0`), ...Object.entries(opts).map(([k, v]) => Buffer.from(`${k}\0${v}\0`))]);
    const flood: dgram.Socket[] = [];
    // 16 sources, each holding its share of 4 transfers: all 64 slots, none ever acknowledged.
    for (let i = 0; i < 200; i++) {
      const f = dgram.createSocket('udp4');
      f.on('error', () => undefined);
      f.bind(0, `127.0.0.${9 + (i % 16)}`, () => f.send(rrq('big.bin', i % 2 === 1 ? { blksize: 65464, windowsize: 64 } : {}), s.tftp, '127.0.0.1'));
      flood.push(f);
    }
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.9', r));
    const cases = [
      Buffer.alloc(0), Buffer.from([0]), Buffer.from([0, 1]), Buffer.from([0, 1, 0x41]), rrq('../../etc/passwd'), rrq('/etc/passwd'),
      rrq('hello.txt', { blksize: 0, tsize: 'x', windowsize: 0, timeout: 0 }), rrq('hello.txt', { blksize: '99999999999999999999', windowsize: 99999 }),
      rrq('hello.txt', { blksize: -1 }), rrq('hello.txt', Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`opt${i}`, 'v'.repeat(5)]))),
      Buffer.from([0, 2, 0x41, 0, 0x6f, 0x63, 0x74, 0x65, 0x74, 0]), Buffer.from([0, 4, 0, 1]), Buffer.from([0, 5, 0, 1, 0x41, 0]), Buffer.from([0, 5]),
      Buffer.from([0, 3, 0, 1, 1, 2]), Buffer.from([0, 6, 1]), Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(600, 0x61)]),
    ];
    for (const c of cases) u.send(c, s.tftp, '127.0.0.1');
    for (let i = 0; i < 2000; i++) {
      u.send(randomBytes(1 + (i % 600)), s.tftp, '127.0.0.1');
      u.send(Buffer.from([0, 4, i >> 8, i & 0xff]), s.tftp, '127.0.0.1');
      if (i % 250 === 0) await sleep(5);
    }
    await sleep(1000);
    // curl gets the slot of a transfer that has waited a whole retransmit interval for its first ACK.
    await healthy(t, s, 'while every transfer slot waits for ACKs that never come', ['tftp']);
    for (const f of flood) f.close();
    u.close();
    const tftp = (await status(s))['services']['tftp'] as { transfers: unknown[]; counters: Record<string, number> };
    t.ok((tftp.counters['tftp.dropped.malformed'] ?? 0) > 0, 'malformed packets counted');
    t.ok(tftp.transfers.length <= 64, `transfers in progress stay within maxTransfers (${tftp.transfers.length})`);
    t.ok((tftp.counters['tftp.reclaimed_unconfirmed'] ?? 0) >= 1, `curl was served from a reclaimed slot (${tftp.counters['tftp.reclaimed_unconfirmed']})`);
  });

  await t.test('NTP: every mode and version, short packets, extension fields, random bytes', ATTACK, async (t) => {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.9', r));
    const replies: Buffer[] = [];
    u.on('message', (m) => replies.push(m));
    const pkt = (first: number, ext = Buffer.alloc(0)): Buffer => { const b = Buffer.alloc(48); b[0] = first; return Buffer.concat([b, ext]); };
    const cases: Buffer[] = [];
    for (let mode = 0; mode < 8; mode++) for (let vn = 0; vn < 8; vn++) cases.push(pkt((vn << 3) | mode));
    cases.push(Buffer.alloc(0), Buffer.alloc(47, 0x23), pkt(0x23, Buffer.from([0, 0, 0, 4])), pkt(0x23, Buffer.from([1, 2, 0xff, 0xff, 0, 0])),
      pkt(0x23, Buffer.alloc(20)), pkt(0x23, Buffer.alloc(1000, 0xff)), pkt(0x23, Buffer.concat([Buffer.from([0, 4, 0, 16]), Buffer.alloc(12), Buffer.from([0, 4, 0, 0])])),
      Buffer.alloc(65_000, 0x23), Buffer.from([0x16, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x17, 0, 3, 42]));
    // What a server may answer at most: the datagrams of a whole header in client mode (3).
    let clientMode = 0;
    const send = (b: Buffer): void => { if (b.length >= 48 && (b[0]! & 7) === 3) clientMode++; u.send(b, s.ntp, '127.0.0.1'); };
    for (const c of cases) send(c);
    for (let i = 0; i < 5000; i++) {
      send(randomBytes(40 + (i % 100)));
      if (i % 500 === 0) await sleep(5);
    }
    await sleep(1000);
    u.close();
    for (const r of replies) {
      const d = decodeNtp(r);
      if (!d.ok || d.value.mode !== 4) { t.fail(`a reply that is not a server reply: ${r.toString('hex').slice(0, 40)}`); break; }
    }
    t.ok(replies.length <= clientMode, `only client-mode requests are answered (${replies.length} replies to ${clientMode} of them, ${5000 + cases.length} sent)`);
    await healthy(t, s, 'after NTP garbage', ['ntp']);
  });

  await t.test('HTTP listener: huge headers, traversal, bad methods and framing, slow headers on every slot', ATTACK, async (t) => {
    const h = { port: s.http };
    const first = (text: string): Promise<string> => exchange(Buffer.from(text, 'latin1'), 800, h).then((r) => r.split('\r\n')[0] ?? '');
    t.match(await first(`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 4\d\d/, 'huge headers: refused');
    for (const path of ['/../../../etc/passwd', '/nodes/..%2f..%2f..%2fetc%2fpasswd', '/style.css/../../etc/passwd', `/${'/'.repeat(3000)}`]) {
      t.notMatch(await exchange(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`), 800, h), /root:x:0:0/, `no file outside the pages for ${path.slice(0, 40)}`);
    }
    t.match(await first('POST /v1/leases HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\n{"ip"'), /^HTTP\/1\.1 405/, 'writes are refused');
    t.match(await first('GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n'), /^HTTP\/1\.1 (200|400)/, 'a lying chunk size');
    await first('\x00\x01\x02garbage\r\n\r\n');
    const slow: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const c = await connectFrom(s.http, `127.0.0.${9 + (i % 10)}`);
      c.write('GET / HTTP/1.1\r\nHost: x\r\n');
      slow.push(c);
    }
    t.ok(await until(() => slow.filter((c) => !c.destroyed && !c.closed).length <= 64), 'connections past maxConnections are dropped');
    for (const c of slow) c.destroy();
    t.ok(await until(async () => (await httpGet(s.http, '/v1/status')) === 200), 'served again once the slow clients go');
    await healthy(t, s, 'after HTTP abuse', ['http']);
  });

  await t.test('control socket: bad JSON, a huge body, unknown routes, garbage, many idle connections', ATTACK, async (t) => {
    const sock = { path: join(s.dir, 's.sock') };
    const first = (text: string | Buffer): Promise<string> => exchange(Buffer.isBuffer(text) ? text : Buffer.from(text), 2000, sock).then((r) => r.split('\r\n')[0] ?? '');
    t.match(await first('POST /v1/leases/release HTTP/1.1\r\nHost: x\r\ncontent-length: 9\r\n\r\n{"ip": 1,'), /^HTTP\/1\.1 400/, 'bad JSON: 400');
    t.match(await first(Buffer.concat([Buffer.from(`POST /v1/leases/release HTTP/1.1\r\nHost: x\r\ncontent-length: ${2 << 20}\r\n\r\n`), Buffer.alloc(2 << 20, 0x20)])), /^HTTP\/1\.1 413/, 'a 2 MB body: 413');
    t.match(await first('GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 404/, 'traversal: no such route');
    await first('\x16\x03\x01garbage\r\n\r\n');
    // The idle clients read what comes, as lanctl would: at the header deadline Node either answers
    // 408 and closes (its 1 s header check, which covers connections that never sent a byte) or the
    // daemon's idle timer closes without a word, whichever of the two 5 s deadlines fires first. A
    // client that never reads keeps the 408 and the end of the stream unread in its buffer and never
    // sees the close (CI, loaded: "64 of 100 still open after 60 s", none of them open in the daemon).
    const idle: net.Socket[] = [];
    const answers: string[] = [];
    for (let i = 0; i < 100; i++) {
      const c = await connectFrom(0, '', sock.path);
      answers.push('');
      c.on('data', (d: Buffer) => { answers[i] += d.toString('latin1'); });
      idle.push(c);
    }
    const open = (): number => idle.filter((c) => !c.destroyed && !c.closed).length;
    t.ok(await until(() => open() <= 64), 'connections past the cap (64) are closed at accept');
    const held = await lanctl(['status', '--config', s.file]);
    if (held.code !== 0) t.match(held.stderr, /maximum of control connections open; retry/, 'lanctl says why while the cap is full');
    // The daemon stalls past both deadlines, as on a loaded machine: once it runs again, Node's header
    // check comes first and answers 408 (the case CI met by chance, now every run).
    process.kill(pid, 'SIGSTOP');
    try { await sleep(7000); } finally { process.kill(pid, 'SIGCONT'); }
    const closed = await until(() => open() === 0, 60_000);
    t.ok(closed, 'idle connections that send no request are closed at the header deadline');
    if (!closed) {
      // Which side holds them: the daemon (accepted, never timed out) or the kernel (still queued
      // on the listening socket, Recv-Q of the LISTEN line, never accepted).
      const ss = await runTool('ss', ['-xanp'], 10_000);
      const lines = ss.out.split('\n').filter((l) => l.includes(sock.path) || l.includes(`pid=${pid},`));
      t.comment(`${open()} of ${idle.length} still open after 60 s; the daemon's unix sockets and the control socket:\n${lines.slice(0, 80).join('\n')}`);
      t.comment(s.d.logs().split('\n').filter((l) => l.includes('control')).slice(-20).join('\n'));
    }
    const told = answers.filter((a) => a !== '');
    t.ok(told.every((a) => a.startsWith('HTTP/1.1 408 ')), `what the idle connections were told, if anything, is 408 (${told.length} of ${idle.length} were)`);
    t.equal((await lanctl(['status', '--config', s.file])).code, 0, 'lanctl status works once they are gone');
    for (const c of idle) c.destroy();
    await healthy(t, s, 'after control socket abuse', ['control']);
  });

  await t.test('file descriptors run out (RLIMIT_NOFILE lowered by prlimit): no crash, no spin, served again after', ATTACK, async (t) => {
    const now = fdCount(pid);
    const original = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${now + 30}:${original[1]}`]);
    const held: net.Socket[] = [];
    try {
      // DNS TCP from 5 sources (32 each, 100 in all) exhausts the 30 spare descriptors; the kernel queues the rest.
      for (let i = 0; i < 100; i++) held.push(await connectFrom(s.dns, `127.0.0.${20 + (i % 5)}`));
      await sleep(1000);
      const cpu = (): number => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
      const before = cpu();
      await sleep(2000);
      const ticks = cpu() - before;
      t.ok(ticks < 150, `no busy loop while descriptors are out (${ticks} CPU ticks in 2 s)`);
      // Requests that need a descriptor fail now; the daemon must survive them.
      await runTool('curl', ['-s', '--max-time', '3', `tftp://127.0.0.1:${s.tftp}/hello.txt`]);
      await dhcpProbe({ server: '127.0.0.1', port: s.dhcp, mac: '52:54:00:bb:00:01', relay: '127.0.0.2', timeoutMs: 3000 }).catch(() => undefined);
      await runLanctl(['status', '--config', s.file], { timeoutMs: 5000 });
      t.ok(running(s.d), 'still running while out of descriptors');
    } finally {
      for (const c of held) c.destroy();
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${original[0]}:${original[1]}`]);
    }
    await sleep(500);
    await healthy(t, s, 'after descriptor exhaustion');
  });

  await sleep(1000);
  const rssAfter = rssKb(pid);
  t.ok(rssAfter < rssBefore + 200 * 1024, `memory stays bounded: RSS ${(rssBefore / 1024).toFixed(0)} MB before, ${(rssAfter / 1024).toFixed(0)} MB after`);
  t.ok(await until(() => fdCount(pid) <= fdsBefore + 10), `descriptors return to where they were (${fdsBefore} before, ${fdCount(pid)} after)`);
  t.notMatch(s.d.logs(), /"level":"fatal"|Unhandled|uncaught/i, 'nothing fatal or unhandled in the log');
  // Nothing the attacks left behind holds the daemon once stopped (a CI run under load once kept it alive after SIGTERM).
  const stopped = await s.d.stop();
  t.equal(stopped.code, 0, 'SIGTERM stops it within its 5 s limit, status 0');
  t.same(logRecords<{ resources: string[] }>(s.d.logs(), 'daemon.exit_held').map((r) => r.resources), [], 'nothing held the stopped process (daemon.exit_held)');
});
