import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, type Lab, type LabHost } from '../support/netns.js';
import { LANCTL } from '../support/paths.js';
import { callDaemonOk } from '../../lib/control-client.js';
import { runLanctl } from '../support/daemon.js';
import type { NtpStatus } from '../../services/ntp/server.js';

// Real NTP clients against lanha in network namespaces (prefix lh): chronyd (-x, own config and pid
// file, never the system service, never the host clock) is the upstream; sntp (ntpdig), ntpdate -q
// and chronyd -Q are the clients. Proves: synchronised -> stratum = upstream + 1, small offsets,
// all three clients accept; modes 6 and 7 get no reply; a bounded flood gets KoD RATE; with the
// upstream gone -> leap 3 and every client refuses; with localStratum -> stratum 10, refid LOCL.

const NET = '10.123.0';
const SRV = `${NET}.1`, UP = `${NET}.2`;

// A raw UDP probe run inside a namespace: sends the given packets (hex) or a bounded flood and
// prints what came back as JSON. Bounded by count and by a hard 5 s timer.
const PROBE = `
const dgram = require('node:dgram');
const [host, port, what, arg] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const replies = [];
s.on('message', (m) => replies.push({ len: m.length, leap: m[0] >> 6, mode: m[0] & 7, stratum: m[1], refid: m.toString('latin1', 12, 16) }));
const client = (i) => { const p = Buffer.alloc(48); p[0] = 0x23; p.writeUInt32BE(0xeeae0000, 40); p.writeUInt32BE(i, 44); return p; };
const finish = () => { s.close(); process.stdout.write(JSON.stringify(replies)); process.exit(0); };
setTimeout(finish, 5000).unref();
s.bind(0, () => {
  if (what === 'hex') { for (const h of arg.split(',')) s.send(Buffer.from(h, 'hex'), +port, host); setTimeout(finish, 1000); return; }
  const count = Math.min(+arg, 1000); let sent = 0;
  const tick = () => { for (let i = 0; i < 20 && sent < count; i++) s.send(client(sent++), +port, host); if (sent < count) setTimeout(tick, 50); else setTimeout(finish, 500); };
  tick();
});`;

interface ProbeReply { len: number; leap: number; mode: number; stratum: number; refid: string }

async function probe(host: LabHost, what: 'hex' | 'flood', arg: string): Promise<ProbeReply[]> {
  const r = await host.exec(process.execPath, ['-e', PROBE, SRV, '123', what, arg], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`probe failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeReply[];
}

function startChronyd(lab: Lab, host: LabHost, dir: string): void {
  const conf = join(dir, 'chrony-upstream.conf');
  writeFileSync(conf, ['port 123', 'allow all', 'local stratum 8', 'cmdport 0', `pidfile ${dir}/chronyd.pid`, `driftfile ${dir}/drift`, ''].join('\n'));
  // -x: never touch the clock; -d: foreground, so the lab stops it by PID.
  lab.track(host.spawn('chronyd', ['-d', '-x', '-u', 'root', '-f', conf]));
}

async function startLanha(lab: Lab, host: LabHost, dir: string, name: string, ntpYaml: string): Promise<{ socket: string; stop: () => Promise<void>; output: () => string }> {
  const socket = join(dir, `${name}.sock`);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `node: { name: ${name}, address: ${SRV}, stateDir: ${dir}/${name}-state, controlSocket: ${socket}, logLevel: debug }\nntp:\n${ntpYaml}`);
  const child = lab.track(host.spawn(process.execPath, [LANCTL, 'serve', '--config', file]));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    // Start-up under a loaded CI machine took over 10 s (a first run compiles and loads everything).
    const timer = setTimeout(() => reject(new Error(`lanha not ready:\n${out}`)), 60_000);
    const check = (): void => { if (out.includes('"event":"daemon.ready"')) { clearTimeout(timer); resolve(); } };
    child.stdout!.on('data', check);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`lanha exited ${code}:\n${out}`)); });
  });
  return {
    socket,
    output: () => out,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) { resolve(); return; }
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

async function ntpStatus(socket: string): Promise<NtpStatus> {
  return await callDaemonOk(socket, 'GET', '/v1/ntp') as NtpStatus;
}

async function waitFor(socket: string, predicate: (s: NtpStatus) => boolean, ms: number): Promise<NtpStatus> {
  const end = Date.now() + ms;
  let last = await ntpStatus(socket);
  while (!predicate(last) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    last = await ntpStatus(socket);
  }
  return last;
}

/** ntpdig/ntpdate print "DATE TIME (+0000) +0.000012 +/- 0.000105 HOST s9 no-leap": offset, error bound. */
function parseNtpdig(text: string): { offsetS: number; boundS: number; stratum: number } | null {
  const m = /\s([+-]\d+\.\d+) \+\/- (\d+\.\d+) \S+ s(\d+)/.exec(text);
  return m ? { offsetS: Number(m[1]), boundS: Number(m[2]), stratum: Number(m[3]) } : null;
}

/** The true offset is 0 (one host clock): a client's offset must lie within its own error bound. */
function withinBound(r: { offsetS: number; boundS: number } | null): boolean {
  return r !== null && Math.abs(r.offsetS) <= r.boundS + 0.001;
}

async function chronydQuery(host: LabHost, dir: string, timeoutS: number): Promise<{ code: number; offsetS: number | null; text: string }> {
  const r = await host.exec('chronyd', ['-Q', '-t', String(timeoutS), '-u', 'root', `server ${SRV} iburst maxsamples 4`, `pidfile ${dir}/q-${host.ns}.pid`, 'cmdport 0'], { timeoutMs: (timeoutS + 5) * 1000 });
  const text = r.stdout + r.stderr;
  const m = /wrong by ([-0-9.e]+) seconds/.exec(text);
  return { code: r.code, offsetS: m ? Number(m[1]) : null, text };
}

/**
 * chronyd -Q prints no error bound; it keeps the least-delayed of 4 samples, so 10 ms is generous on
 * a quiet machine. On a loaded one all four can be delayed: a second query decides (a served clock
 * that is really off stays off).
 */
const smallOffset = (r: { offsetS: number | null }): boolean => r.offsetS !== null && Math.abs(r.offsetS) < 0.01;

async function chronydOffset(host: LabHost, dir: string): Promise<{ code: number; offsetS: number | null; text: string }> {
  const q = await chronydQuery(host, dir, 15);
  return q.code === 0 && !smallOffset(q) ? chronydQuery(host, dir, 15) : q;
}

t.test('sntp, ntpdate and chronyd -Q against lanha synchronised to a chronyd upstream', async (t) => {
  if (!requireLab(t, ['chronyd', 'sntp', 'ntpdate'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ntp-'));
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`);
      const up = await lab.addHost('up', `${UP}/24`);
      const cli = await lab.addHost('cli', `${NET}.3/24`);
      const flood = await lab.addHost('flood', `${NET}.4/24`);
      startChronyd(lab, up, dir);
      await new Promise((r) => setTimeout(r, 1000));
      // rateLimit 1/s with a burst of 16: the three clients stay under it, the flood does not.
      const lanha = await startLanha(lab, srv, dir, 'synced', `  port: 123\n  listen: [${SRV}]\n  upstreams: ["${UP}"]\n  pollInterval: 2s\n  rateLimit: { interval: 0, burst: 16 }\n`);
      // Three samples of the start burst (2 s apart): the offset is taken from the least-delayed one.
      const status = await waitFor(lanha.socket, (s) => s.synchronised && (s.sources[0]?.reach ?? '') >= '007', 12_000);
      t.match(status, { synchronised: true, mode: 'source', stratum: 9, leap: 0, referenceId: UP, source: `${UP}:123` }, `lanha follows chronyd: ${status.reason}`);
      // Both serve this host's clock, so the true offset is 0; a measurement is only wrong by up to
      // half its round trip (the machine may be busy), plus a little for the clock reads.
      const upstream = status.sources[0]!;
      t.ok(Math.abs(upstream.offsetMs ?? 99) <= (upstream.delayMs ?? 0) / 2 + 1, `offset to the upstream ${upstream.offsetMs} ms within its bound (delay ${upstream.delayMs} ms)`);
      const text = await runLanctl(['status', '--socket', lanha.socket]);
      t.match(text.stdout, /ntp: synchronised \(synchronised to upstream 10\.123\.0\.2:123\), stratum 9, refid 10\.123\.0\.2, offset [-+]0\.\d{3} ms/, 'lanctl status says so');
      t.match(text.stdout, /10\.123\.0\.2:123\s+upstream\s+\d+\s+[-+]0\.\d{3} ms\s+\d+\.\d{3} ms\s+8\s+ok/, 'with the offset to the upstream');

      const sntp = await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
      const s = parseNtpdig(sntp.stdout);
      t.equal(sntp.code, 0, `sntp accepts: ${sntp.stdout}${sntp.stderr}`);
      t.equal(s?.stratum, 9, 'sntp sees stratum 9');
      t.ok(withinBound(s), `sntp offset ${s?.offsetS} s within its bound ±${s?.boundS} s`);

      const ntpdate = await cli.exec('ntpdate', ['-q', SRV], { timeoutMs: 15_000 });
      const d = parseNtpdig(ntpdate.stdout);
      t.equal(ntpdate.code, 0, `ntpdate -q accepts: ${ntpdate.stdout}${ntpdate.stderr}`);
      t.equal(d?.stratum, 9, 'ntpdate sees stratum 9');
      t.ok(withinBound(d), `ntpdate offset ${d?.offsetS} s within its bound ±${d?.boundS} s`);

      const q = await chronydOffset(cli, dir);
      t.equal(q.code, 0, 'chronyd -Q accepts');
      t.ok(smallOffset(q), `chronyd -Q offset small (${q.offsetS} s): ${q.text.split('\n').find((l) => l.includes('wrong')) ?? q.text}`);

      // Modes 6 (ntpq readvar) and 7 (ntpdc monlist) and a version-0 packet: silence. A mode 3 beside them is answered.
      const mode6 = '16020001000000000000000000000000';
      const mode7 = '17000320' + '00'.repeat(44);
      const version0 = '03' + '00'.repeat(47);
      const mode3 = '23' + '00'.repeat(39) + 'eeae520700000001';
      const replies = await probe(cli, 'hex', [mode6, mode7, version0, mode3].join(','));
      t.same(replies.map((r) => [r.mode, r.len]), [[4, 48]], 'only the mode 3 request got a reply, of its own size');
      const afterModes = await ntpStatus(lanha.socket);
      // A real mode 6 message is a 12-byte header plus data, shorter than NTP's 48: dropped as malformed.
      t.match(afterModes.counters, { 'dropped.mode': 1, 'dropped.malformed': 1, 'dropped.version': 1 }, 'each drop counted by reason');

      // A bounded flood: 300 requests in ~0.75 s from one address.
      const flooded = await probe(flood, 'flood', '300');
      const full = flooded.filter((r) => r.stratum !== 0);
      const kod = flooded.filter((r) => r.stratum === 0);
      t.ok(full.length >= 16 && full.length <= 20, `about the burst is answered in full (${full.length})`);
      t.ok(kod.length >= 20 && kod.every((r) => r.refid === 'RATE' && r.leap === 3), `KoD RATE for some limited requests (${kod.length})`);
      t.ok(flooded.every((r) => r.len === 48), 'no reply larger than a request');
      const after = await ntpStatus(lanha.socket);
      t.ok((after.counters['dropped.rate'] ?? 0) > 100, 'the rest dropped and counted');
      const sntpAgain = await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
      t.equal(sntpAgain.code, 0, 'another client is still answered during and after the flood');
      await lanha.stop();
      t.ok(lab.resolvConfUnchanged(), 'host resolv.conf untouched');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('no usable upstream: leap 3 and clients refuse; localStratum: stratum 10, LOCL', async (t) => {
  if (!requireLab(t, ['chronyd', 'sntp', 'ntpdate'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ntp-'));
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`);
      const cli = await lab.addHost('cli', `${NET}.3/24`);
      const lonely = await startLanha(lab, srv, dir, 'lonely', `  port: 123\n  listen: [${SRV}]\n  upstreams: ["${NET}.9"]\n`);
      const status = await ntpStatus(lonely.socket);
      t.match(status, { synchronised: false, mode: 'unsynchronised', stratum: 16, leap: 3 }, `unsynchronised: ${status.reason}`);
      t.match((await runLanctl(['status', '--socket', lonely.socket])).stdout, /ntp: NOT SYNCHRONISED: serving leap 3/, 'lanctl status says so loudly');
      const replies = await probe(cli, 'hex', '23' + '00'.repeat(39) + 'eeae520700000001');
      t.match(replies, [{ leap: 3, stratum: 16, mode: 4 }], 'the reply says leap 3, stratum 16');
      const sntp = await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
      t.not(sntp.code, 0, `sntp refuses: ${sntp.stdout}${sntp.stderr}`.trim());
      const ntpdate = await cli.exec('ntpdate', ['-q', SRV], { timeoutMs: 15_000 });
      t.not(ntpdate.code, 0, `ntpdate -q refuses: ${ntpdate.stdout}${ntpdate.stderr}`.trim());
      const q = await chronydQuery(cli, dir, 5);
      t.equal(q.offsetS, null, 'chronyd -Q finds no usable source');
      await lonely.stop();

      const local = await startLanha(lab, srv, dir, 'local', `  port: 123\n  listen: [${SRV}]\n  localStratum: 10\n`);
      const ls = await ntpStatus(local.socket);
      t.match(ls, { synchronised: true, mode: 'local', stratum: 10, referenceId: 'LOCL' });
      const sntpLocal = await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
      t.equal(parseNtpdig(sntpLocal.stdout)?.stratum, 10, `sntp accepts stratum 10: ${sntpLocal.stdout}${sntpLocal.stderr}`);
      const localReply = await probe(cli, 'hex', '23' + '00'.repeat(39) + 'eeae520700000002');
      t.match(localReply, [{ leap: 0, stratum: 10, refid: 'LOCL' }]);
      await local.stop();
      t.ok(lab.resolvConfUnchanged(), 'host resolv.conf untouched');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('kernel receive stamps: chronyd -Q and sntp over a veth are stamped by the kernel capture', async (t) => {
  if (!requireLab(t, ['chronyd', 'sntp', 'tcpdump'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ntp-'));
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`);
      const cli = await lab.addHost('cli', `${NET}.3/24`);
      // kernelStamps is left at its default (auto): tcpdump is here and we are root, so it runs.
      const lanha = await startLanha(lab, srv, dir, 'kstamps', `  port: 123\n  listen: [${SRV}]\n  localStratum: 10\n`);
      const running = await waitFor(lanha.socket, (s) => s.kernelStamps?.state === 'running', 10_000);
      t.match(running.kernelStamps, { state: 'running', problem: null, command: /^tcpdump -i any .*udp and \(dst port 123 or src port 123\)$/ }, 'the capture child runs');
      // The log line is written before the state is shown, but reaches us through the child's pipe.
      for (let i = 0; i < 50 && !lanha.output().includes('"event":"ntp.kernel_stamps.on"'); i++) await new Promise((r) => setTimeout(r, 100));
      t.match(lanha.output(), /"event":"ntp\.kernel_stamps\.on"/, 'and says so in the log');

      const q = await chronydOffset(cli, dir);
      t.equal(q.code, 0, 'chronyd -Q accepts');
      t.ok(smallOffset(q), `chronyd -Q offset small (${q.offsetS} s)`);
      const sntp = await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
      t.equal(sntp.code, 0, `sntp accepts: ${sntp.stdout}${sntp.stderr}`);
      t.ok(withinBound(parseNtpdig(sntp.stdout)), `sntp offset within its bound: ${sntp.stdout}`);

      // The capture reports our replies after they left, through tcpdump's pipe: on a loaded machine
      // that lags the replies themselves, so wait (bounded) for it to catch up.
      const settled = (x: NtpStatus): boolean => {
        const n = x.counters.replies ?? 0;
        return x.kernelStamps !== null && x.kernelStamps.captured >= 2 * n - 2 && x.kernelStamps.transmitSamples >= n - 1;
      };
      const after = await waitFor(lanha.socket, settled, 10_000);
      const k = after.kernelStamps!;
      const replies = after.counters.replies ?? 0;
      t.ok(replies >= 3, `${replies} replies (chronyd -Q and sntp)`);
      // A reply takes its receive stamp from the kernel (at once or after a short wait) when the
      // capture's pipe keeps up; on a loaded machine (two test files beside busy helpers) it lags
      // past the wait and the reply takes the estimate: how many do is scheduling, not behaviour.
      // What must hold: the kernel's stamps reach the replies, and every reply says where its stamp came from.
      const used = Object.values(k.used).reduce((a, b) => a + b, 0);
      t.ok(k.used.kernel + k.used.kernel_waited >= 1, `receive stamps from the kernel: ${JSON.stringify(k.used)} of ${replies} replies`);
      t.equal(used, replies, 'every reply counted under one source of its receive stamp');
      t.ok(k.captured >= 2 * replies - 2, `requests and our replies captured (${k.captured})`);
      t.ok(k.transmitSamples >= replies - 1, `transmit residuals of our replies seen (${k.transmitSamples})`);
      await lanha.stop();

      const off = await startLanha(lab, srv, dir, 'kstamps-off', `  port: 123\n  listen: [${SRV}]\n  localStratum: 10\n  kernelStamps: off\n`);
      t.equal((await ntpStatus(off.socket)).kernelStamps, null, 'kernelStamps: off starts no capture');
      await off.stop();
      t.ok(lab.resolvConfUnchanged(), 'host resolv.conf untouched');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
