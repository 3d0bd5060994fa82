// Proves the TLS channel of the peer transport on real loopback sockets: members with certificates
// from the cluster CA connect and carry Raft frames both ways; a certificate from another CA, one
// naming another member, an expired one, a wrong pin, a TLS 1.2-only client and a plain-TCP
// (cluster key) peer are each refused, counted and logged, and the listener still serves a good
// member afterwards; unfinished TLS handshakes are bounded like the cluster key's.
import t from 'tap';
import { until } from '../../test/support/poll.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { connect, type Socket } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { silentLogger } from '../../lib/log.js';
import { HANDSHAKES_PER_SOURCE_MAX, Transport, type TransportOptions } from './transport.js';
import { emptyMessage, type Message } from './types.js';
import { makeClusterCerts, makeMemberCert, writeP256Key, type ClusterCertFiles } from './tls-certs.js';
import { certPin, type TlsMaterial } from './tls.js';
import { freePort } from '../../test/scenarios/raft/cluster-harness.js';
import { doctorFindings } from '../../services/ops/doctor.js';
import { parseConfig } from '../../config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lanha-tls-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const good = makeClusterCerts(dir, 'c1', [{ name: 'a', address: '127.0.0.1' }, { name: 'b' }, { name: 'c' }], { ca: 30, member: 30 });
const otherDir = mkdtempSync(join(tmpdir(), 'lanha-tls-other-'));
t.teardown(() => rmSync(otherDir, { recursive: true, force: true }));
const other = makeClusterCerts(otherDir, 'c1', [{ name: 'a' }], { ca: 30, member: 30 });
const expiredKey = join(dir, 'a-expired.key');
writeP256Key(expiredKey);
const expiredCert = makeMemberCert({ name: 'a', keyFile: expiredKey, caCertFile: good.caCert, caKeyFile: good.caKey, days: -1 });

const read = (file: string): string => readFileSync(file, 'utf8');
function material(files: ClusterCertFiles, member: string, pins: Record<string, string> = {}, trust = files.caCert): TlsMaterial {
  return { ca: read(trust), cert: read(files.members[member]!.cert), key: read(files.members[member]!.key), pins };
}

interface LogLine { event?: string; reason?: string; code?: string }
function arrayLog(lines: LogLine[]): TransportOptions['log'] {
  const log = {
    warn: (o: LogLine) => { lines.push(o); }, debug: () => undefined, info: () => undefined, error: () => undefined,
    child: () => log, isLevelEnabled: () => true,
  };
  return log as unknown as TransportOptions['log'];
}

const counters = (x: Transport): Record<string, number> => x.status()['counters'] as Record<string, number>;
const connected = (x: Transport, peer: string): boolean => (x.status()['peers'] as Record<string, { connected: boolean }>)[peer]!.connected;

async function cluster(t: { teardown(fn: () => Promise<void>): void }) {
  const peers = { a: { host: '127.0.0.1', port: await freePort() }, b: { host: '127.0.0.1', port: await freePort() }, c: { host: '127.0.0.1', port: await freePort() } };
  const started: Transport[] = [];
  t.teardown(async () => { for (const x of started) await x.close(); });
  const start = async (self: string, security: { tls: TlsMaterial } | { key: Uint8Array }, log: TransportOptions['log'] = silentLogger) => {
    const got: Message[] = [];
    const x = new Transport({ self, clusterId: 'c1', ...security, listen: peers[self as 'a'], peers, log });
    await x.start((m) => got.push(m));
    started.push(x);
    return { x, got };
  };
  return { peers, start };
}

/** After a refusal, the listener b still takes a good member (c) and its frames. */
async function stillServes(t: { ok(v: unknown, m: string): void }, start: Awaited<ReturnType<typeof cluster>>['start'], b: { x: Transport; got: Message[] }): Promise<void> {
  const c = await start('c', { tls: material(good, 'c') });
  t.ok(await until(() => connected(c.x, 'b')), 'a good member still connects to the listener');
  const before = b.got.length;
  c.x.send([emptyMessage('heartbeat', 'c', 'b', 4)]);
  t.ok(await until(() => b.got.some((m, i) => i >= before && m.from === 'c')), 'and its frames are delivered');
}

t.test('members with certificates from the cluster CA connect and carry Raft frames both ways', async (t) => {
  const { start } = await cluster(t);
  const a = await start('a', { tls: material(good, 'a') });
  const b = await start('b', { tls: material(good, 'b') });
  t.ok(await until(() => connected(a.x, 'b') && connected(b.x, 'a')), 'both links up');
  const m = { ...emptyMessage('append', 'a', 'b', 3), index: 7, entries: [{ term: 3, index: 8, type: 0 as const, data: new Uint8Array([1, 2]) }] };
  a.x.send([m, { ...m, index: 8 }]);
  b.x.send([emptyMessage('append-resp', 'b', 'a', 3)]);
  t.ok(await until(() => b.got.length === 2 && a.got.length === 1), 'delivered');
  t.same([...b.got[0]!.entries[0]!.data], [1, 2]);
  t.equal(a.x.status()['security'], 'tls');
  t.notOk(Object.keys({ ...counters(a.x), ...counters(b.x) }).some((k) => k.startsWith('rejected.')), 'nothing refused');
});

t.test('pinned certificates: the right pin connects', async (t) => {
  const { start } = await cluster(t);
  const pinOf = (m: string): string => certPin(new X509Certificate(read(good.members[m]!.cert)));
  const pins = { a: pinOf('a'), b: pinOf('b') };
  const a = await start('a', { tls: material(good, 'a', pins) });
  const b = await start('b', { tls: material(good, 'b', pins) });
  a.x.send([]);
  t.ok(await until(() => connected(a.x, 'b') && connected(b.x, 'a')), 'both links up');
});

const refusals: Array<{ name: string; reason: string; code?: RegExp; dialler: () => { tls: TlsMaterial } | { key: Uint8Array }; listenerPins?: () => Record<string, string> }> = [
  { name: 'a certificate from another CA', reason: 'tls-unauthorized', dialler: () => ({ tls: material(other, 'a', {}, good.caCert) }) },
  { name: "lan-b's certificate presented as lan-a", reason: 'tls-wrong-member', dialler: () => ({ tls: material(good, 'b') }) },
  { name: 'an expired certificate', reason: 'tls-unauthorized', code: /EXPIRED/, dialler: () => ({ tls: { ca: read(good.caCert), cert: expiredCert, key: read(expiredKey), pins: {} } }) },
  { name: 'a certificate that is not the pinned one', reason: 'tls-pin', dialler: () => ({ tls: material(good, 'a') }), listenerPins: () => ({ a: 'ab'.repeat(32) }) },
  { name: 'a plain-TCP peer with the cluster key', reason: 'tls-handshake', dialler: () => ({ key: new Uint8Array(32).fill(1) }) },
];

for (const r of refusals) {
  t.test(`${r.name} is refused, counted and logged; the listener still serves`, async (t) => {
    const { start } = await cluster(t);
    const lines: LogLine[] = [];
    const b = await start('b', { tls: material(good, 'b', r.listenerPins?.() ?? {}) }, arrayLog(lines));
    const a = await start('a', r.dialler());
    a.x.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
    t.ok(await until(() => (counters(b.x)[`rejected.${r.reason}`] ?? 0) > 0), `counted: ${JSON.stringify(counters(b.x))}`);
    const line = lines.find((l) => l.event === 'raft.peer_rejected' && l.reason === r.reason);
    t.ok(line, 'a raft.peer_rejected line names the reason');
    if (r.code) t.match(line?.code, r.code);
    t.equal(b.got.length, 0, 'nothing it sent was delivered');
    t.notOk(connected(a.x, 'b'), 'the dialler has no link');
    await a.x.close();
    await stillServes(t, start, b);
  });
}

t.test('a TLS 1.2-only client is refused, counted; the listener still serves', async (t) => {
  const { peers, start } = await cluster(t);
  const b = await start('b', { tls: material(good, 'b') });
  const m = material(good, 'a');
  const outcome = await new Promise<string>((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port: peers.b.port, ca: m.ca, cert: m.cert, key: m.key, maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2', checkServerIdentity: () => undefined });
    s.on('secureConnect', () => { s.destroy(); resolve('connected'); });
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
  t.not(outcome, 'connected', `the client saw ${outcome}`);
  t.ok(await until(() => (counters(b.x)['rejected.tls-handshake'] ?? 0) > 0), `counted: ${JSON.stringify(counters(b.x))}`);
  await stillServes(t, start, b);
});

t.test('a TLS dialler at a cluster-key listener is refused there, and a listener posing as another member is refused by the dialler', async (t) => {
  const { start } = await cluster(t);
  const b = await start('b', { key: new Uint8Array(32).fill(1) });
  const a = await start('a', { tls: material(good, 'a') });
  a.x.send([]);
  t.ok(await until(() => Object.keys(counters(b.x)).some((k) => k.startsWith('rejected.'))), `the plain listener refuses: ${JSON.stringify(counters(b.x))}`);
  await b.x.close();
  await a.x.close();
  const { start: start2 } = await cluster(t);
  const impostor = await start2('b', { tls: material(good, 'c') }); // listens as b with c's certificate
  const dialler = await start2('a', { tls: material(good, 'a') });
  t.ok(await until(() => (counters(dialler.x)['rejected.tls-wrong-member'] ?? 0) > 0), `the dialler refuses it: ${JSON.stringify(counters(dialler.x))}`);
  t.equal(impostor.got.length, 0);
});

t.test('connections that never start their TLS handshake are bounded per source and timed out; close() ends them', async (t) => {
  const { peers } = await cluster(t);
  const b = new Transport({ self: 'b', clusterId: 'c1', tls: material(good, 'b'), listen: peers.b, peers, log: silentLogger, handshakeTimeoutMs: 1500 });
  await b.start(() => undefined);
  const idle: Socket[] = [];
  t.teardown(() => { for (const s of idle) s.destroy(); });
  for (let i = 0; i < HANDSHAKES_PER_SOURCE_MAX + 3; i++) {
    const s = connect({ port: peers.b.port, host: '127.0.0.1', localAddress: '127.0.0.7' });
    s.on('error', () => undefined);
    idle.push(s);
    await new Promise((r) => { s.once('connect', r); s.once('close', r); });
  }
  t.ok(await until(() => (counters(b)['rejected.handshakes-per-source'] ?? 0) === 3), `the ones past the share refused: ${JSON.stringify(counters(b))}`);
  t.equal(b.status()['handshaking'], HANDSHAKES_PER_SOURCE_MAX, 'the share waits in its TLS handshake');
  t.ok(await until(() => (counters(b)['rejected.handshake-timeout'] ?? 0) === HANDSHAKES_PER_SOURCE_MAX), 'and is dropped at the handshake timeout');
  t.ok(await until(() => b.status()['handshaking'] === 0), 'and none is left waiting');
  // Half-done TLS handshakes at close(): it returns and nothing crashes.
  for (let i = 0; i < 3; i++) {
    const s = tlsConnect({ host: '127.0.0.1', port: peers.b.port, ca: read(good.caCert), checkServerIdentity: () => undefined });
    s.on('error', () => undefined);
    idle.push(s);
  }
  await new Promise((r) => setTimeout(r, 20));
  await b.close();
  t.pass('close() returned with TLS handshakes under way');
});

t.test('status carries when the certificate and the CA end; doctor warns 30 days ahead and errs once ended', async (t) => {
  const { start } = await cluster(t);
  const b = await start('b', { tls: material(good, 'b') });
  const transport = b.x.status();
  const validTo = transport['tlsValidTo'] as { cert: string; ca: string };
  t.equal(validTo.cert, new Date(new X509Certificate(read(good.members['b']!.cert)).validTo).toISOString());
  const config = parseConfig('node: { name: b }\n');
  const findings = (nowMs: number): string[] => doctorFindings({
    config, cluster: { mode: 'cluster', role: 'leader', leader: 'b', term: 1, commitIndex: 1, appliedIndex: 1, transport }, pools: [], leases: [], nowMs,
  }).filter((f) => f.id === 'raft.tls-expiry').map((f) => `${f.severity}:${f.evidence.includes('CA') ? 'ca' : 'cert'}`);
  const end = Date.parse(validTo.cert);
  t.same(findings(end - 40 * 86_400_000), [], 'nothing 40 days ahead');
  t.same(findings(end - 10 * 86_400_000).sort(), ['warning:ca', 'warning:cert'], 'a warning 10 days ahead (the test CA ends within seconds of it)');
  t.same(findings(end + 86_400_000).sort(), ['error:ca', 'error:cert'], 'an error once ended');
  const fixes = doctorFindings({
    config, cluster: { mode: 'cluster', role: 'leader', leader: 'b', term: 1, commitIndex: 1, appliedIndex: 1, transport }, pools: [], leases: [], nowMs: end,
  }).filter((f) => f.id === 'raft.tls-expiry');
  t.match(fixes.find((f) => !f.evidence.includes('CA'))?.fix, /--renew --member/, 'a member certificate: renewed with the CA kept');
  t.match(fixes.find((f) => f.evidence.includes('CA'))?.fix, /--force --config FILE \(a new CA\)/, 'an ended CA: made anew');
  const ahead = doctorFindings({
    config, cluster: { mode: 'cluster', role: 'leader', leader: 'b', term: 1, commitIndex: 1, appliedIndex: 1, transport }, pools: [], leases: [], nowMs: end - 10 * 86_400_000,
  }).filter((f) => f.id === 'raft.tls-expiry');
  t.match(ahead.find((f) => f.evidence.includes('CA'))?.fix, /--rotate-ca .*then --renew, then --finish-rotation.*no outage/, 'a CA that ends soon: rotated with no outage');
  t.equal(validTo['cas' as keyof typeof validTo], 1, 'one CA in the file');
  const rotating = { ...transport, tlsValidTo: { ...validTo, cas: 2 } };
  const mid = doctorFindings({
    config, cluster: { mode: 'cluster', role: 'leader', leader: 'b', term: 1, commitIndex: 1, appliedIndex: 1, transport: rotating }, pools: [], leases: [], nowMs: end,
  }).filter((f) => f.id === 'raft.tls-expiry' && f.evidence.includes('CA'));
  t.match(mid, [{ evidence: /the oldest of the 2 CAs in cluster\.tls\.ca \(a CA rotation under way\) ended/, fix: /--finish-rotation \(drops the old CA\)/ }], 'mid-rotation, the old CA ending: finish the rotation, not a new CA (--force)');
});
