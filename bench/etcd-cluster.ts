// Three etcd members (Debian etcd-server) on 127.0.0.1 high ports, the anchor of the Raft benches
// (bench/raft.ts, bench/raft-stall.ts). Every process is started here and stopped here, by PID.
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../test/scenarios/raft/cluster-harness.js';

export const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function post(url: string, path: string, body: string, timeoutMs: number): Promise<{ ok: boolean; text: string }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'POST', agent, timeout: timeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let d = '';
      res.on('data', (c: Buffer) => { d += c.toString(); });
      res.on('end', () => resolve({ ok: (res.statusCode ?? 500) < 300 && !d.includes('"error"'), text: d }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ ok: false, text: '' }));
    req.end(body);
  });
}

export function etcdPut(url: string, key: string, value: string, timeoutMs = 5000): Promise<boolean> {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return post(url, '/v3/kv/put', JSON.stringify({ key: b64(key), value: b64(value) }), timeoutMs).then((r) => r.ok);
}

export interface EtcdCluster {
  procs: ChildProcess[];
  urls: string[];
  /** Index of the member that says it leads (0 when none answers so). */
  leaderIndex(): Promise<number>;
  /** Each member's view: the leader's member id and the Raft term (null: no answer). */
  views(): Promise<Array<{ leader: string; term: number } | null>>;
  stop(): Promise<void>;
}

function onPath(tool: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((d) => d !== '' && existsSync(join(d, tool)));
}

/** Starts three members with these timers and waits (up to 20 s) until a write succeeds. */
export async function startEtcdCluster(electionMs = 1000, heartbeatMs = 100): Promise<EtcdCluster> {
  if (!onPath('etcd')) throw new Error('etcd is not installed: as root run `apt-get install etcd-server` (bash bench/anchors.sh raft does it)');
  const dir = mkdtempSync(join(tmpdir(), 'lanha-bench-etcd-'));
  const procs: ChildProcess[] = [];
  const client: number[] = [], peer: number[] = [];
  for (let i = 0; i < 3; i++) { client.push(await freePort()); peer.push(await freePort()); }
  const cluster = [0, 1, 2].map((i) => `e${i}=http://127.0.0.1:${peer[i]}`).join(',');
  for (let i = 0; i < 3; i++) {
    procs[i] = spawn('etcd', ['--name', `e${i}`, '--data-dir', join(dir, `e${i}`), '--listen-client-urls', `http://127.0.0.1:${client[i]}`,
      '--advertise-client-urls', `http://127.0.0.1:${client[i]}`, '--listen-peer-urls', `http://127.0.0.1:${peer[i]}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer[i]}`, '--initial-cluster', cluster, '--initial-cluster-state', 'new',
      '--initial-cluster-token', 'lanha-bench', '--election-timeout', String(electionMs), '--heartbeat-interval', String(heartbeatMs), '--log-level', 'error'], { stdio: 'ignore' });
    procs[i]!.on('error', (error) => { process.stderr.write(`etcd e${i} failed: ${error.message}\n`); });
  }
  const urls = client.map((p) => `http://127.0.0.1:${p}`);
  const stop = async (): Promise<void> => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGCONT'); p.kill('SIGTERM'); }
    await new Promise((r) => setTimeout(r, 500));
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = performance.now() + 20_000;
  while (!(await etcdPut(urls[0]!, 'warmup', 'x', 1000))) {
    if (performance.now() > deadline) { await stop(); throw new Error('etcd did not become healthy within 20 s'); }
    await new Promise((r) => setTimeout(r, 200));
  }
  const views = async (): Promise<Array<{ leader: string; term: number } | null>> => Promise.all(urls.map(async (url) => {
    const r = await post(url, '/v3/maintenance/status', '{}', 2000);
    try {
      const s = JSON.parse(r.text) as { header?: { member_id?: string; raft_term?: string }; leader?: string; raftTerm?: string };
      return s.leader === undefined ? null : { leader: s.leader, term: Number(s.raftTerm ?? s.header?.raft_term ?? NaN) };
    } catch { return null; }
  }));
  const leaderIndex = async (): Promise<number> => {
    for (let i = 0; i < urls.length; i++) {
      const r = await post(urls[i]!, '/v3/maintenance/status', '{}', 2000);
      try {
        const s = JSON.parse(r.text) as { header?: { member_id?: string }; leader?: string };
        if (s.header?.member_id !== undefined && s.header.member_id === s.leader) return i;
      } catch { /* try the next */ }
    }
    return 0;
  };
  return { procs, urls, leaderIndex, views, stop };
}
