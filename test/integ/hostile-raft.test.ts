// The Raft peer port of a three-member cluster of real daemons (`lanctl serve`) under unauthenticated
// floods: idle connections from one host and from many, half-open ones, garbage and lying frame
// lengths. The attacked member's descriptors stay bounded, the refusals are counted, every member
// keeps running and the cluster keeps a leader with every member reporting. The services' surfaces:
// hostile.test.ts.
import t from 'tap';
import net from 'node:net';
import { readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runLanctl, scratchConfig, serveDaemon, type ServedDaemon } from '../support/daemon.js';
import { freePorts } from '../support/ports.js';
import { HANDSHAKES_MAX } from '../../cluster/raft/transport.js';

t.setTimeout(240_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const running = (d: ServedDaemon): boolean => d.child.exitCode === null && d.child.signalCode === null;

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; await sleep(100)) if (await cond()) return true;
  return cond();
}

async function connectFrom(port: number, local: string): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: local });
  s.on('error', () => undefined);
  await new Promise((r) => { s.once('connect', r); s.once('close', r); });
  return s;
}

async function exchange(bytes: Buffer, ms: number, port: number): Promise<void> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
  s.on('error', () => undefined);
  s.on('connect', () => s.write(bytes));
  await new Promise<void>((resolve) => { s.once('close', () => resolve()); setTimeout(resolve, ms); });
  s.destroy();
}

async function status(s: { file: string }): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await runLanctl(['status', '--json', '--config', s.file]);
  if (r.code !== 0) throw new Error(`lanctl status failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

t.test('the Raft peer port of a three-member cluster: unauthenticated floods are dropped, the cluster carries on', async (t) => {
  const names = ['lan-a', 'lan-b', 'witness'];
  const ports = await freePorts(3);
  const sc = scratchConfig('');
  writeFileSync(join(sc.dir, 'key'), randomBytes(32).toString('hex'), { mode: 0o600 });
  const daemons: ServedDaemon[] = [];
  t.teardown(async () => { for (const d of daemons) await d.stop(); sc.cleanup(); });
  const files = names.map((n) => join(sc.dir, `${n}.yaml`));
  for (const [i, n] of names.entries()) {
    writeFileSync(files[i]!, `node: { name: ${n}, role: ${n === 'witness' ? 'witness' : 'server'}, address: 127.0.0.1, stateDir: "${sc.dir}/${n}", controlSocket: "${sc.dir}/${n}.sock" }
cluster:
  id: lh
  keyFile: "${sc.dir}/key"
  members:
${names.map((m, j) => `    - { name: ${m}, address: 127.0.0.1, port: ${ports[j]}${m === 'witness' ? ', role: witness' : ''} }`).join('\n')}
`);
  }
  daemons.push(...await Promise.all(files.map((f) => serveDaemon(f, { timeoutMs: 60_000 }))));
  const a = daemons[0]!;
  const pid = a.child.pid!;
  const clusterOf = async (): Promise<Record<string, any>> => (await status({ file: files[0]! }))['cluster'] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  t.ok(await until(async () => typeof (await clusterOf())['leader'] === 'string', 30_000), 'a leader at start');
  const fdsBefore = fdCount(pid);

  const conns: net.Socket[] = [];
  for (let i = 0; i < 100; i++) conns.push(await connectFrom(ports[0]!, '127.0.0.9')); // one host, idle
  for (let h = 10; h < 30; h++) for (let i = 0; i < 5; i++) conns.push(await connectFrom(ports[0]!, `127.0.0.${h}`)); // many hosts
  for (let i = 0; i < 20; i++) { // half-open: the attacker's side is shut
    const c = await connectFrom(ports[0]!, '127.0.0.30');
    c.end();
    conns.push(c);
  }
  for (let i = 0; i < 40; i++) {
    const junk = i % 2 === 0 ? randomBytes(10 + i * 100) : Buffer.concat([Buffer.from([0x7f, 0xff, 0xff, 0xff]), Buffer.alloc(3000)]);
    void exchange(junk, 500, ports[0]!);
  }
  await sleep(1500);
  t.ok(fdCount(pid) <= fdsBefore + HANDSHAKES_MAX + 10, `descriptors bounded under a flood of ${conns.length} connections (${fdsBefore} before, ${fdCount(pid)} now)`);
  const counters = (await clusterOf())['transport']['counters'] as Record<string, number>;
  t.ok((counters['rejected.handshakes-per-source'] ?? 0) > 0 && (counters['rejected.handshakes-full'] ?? 0) > 0, `refusals counted: ${JSON.stringify(counters)}`);
  t.ok(daemons.every(running), 'every member still running');
  for (const c of conns) c.destroy();

  t.ok(await until(async () => {
    const c = await clusterOf();
    const members = (await status({ file: files[0]! }))['members'] as Array<{ reported: boolean; local: boolean }>;
    return typeof c['leader'] === 'string' && members.every((m) => m.local || m.reported);
  }, 20_000), 'a leader, and every member reports to lan-a, after the flood');
  t.ok(await until(() => fdCount(pid) <= fdsBefore + 5), `descriptors return (${fdCount(pid)})`);
  t.notMatch(a.logs(), /"level":"(fatal|error)"|Unhandled|uncaught/i, 'nothing fatal, failed or unhandled in the log');
});
