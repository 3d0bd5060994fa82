import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../../support/paths.js';
import { serveDaemon, type ServedDaemon } from '../../support/daemon.js';
import { makeClusterCerts } from '../../../cluster/raft/tls-certs.js';

// Real member processes (test/scenarios/raft/member.ts) on loopback high ports, for the crash
// tests and the benchmark. Every process is started here and stopped here, by PID.

import { freePort, freePorts } from '../../support/ports.js';

export { freePort };

const MEMBER = repoPath('dist', 'test', 'scenarios', 'raft', 'member.js');

export interface MemberStatus { role: string; term: number; commitIndex: number; appliedIndex: number; stateHash: string; leader: string | null }

export class MemberProcess {
  readonly name: string;
  readonly configFile: string;
  child: ChildProcess | undefined;
  #buf = '';
  #waiters: Array<{ prefix: string; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  #acks = new Map<number, { resolve: (index: number) => void; reject: (e: Error) => void }>();
  leaderSince: number | undefined;
  onLeader: ((name: string, term: number, at: number) => void) | undefined;
  output = '';

  readonly httpPort: number | undefined;

  constructor(name: string, configFile: string, httpPort?: number) {
    this.name = name;
    this.configFile = configFile;
    this.httpPort = httpPort;
  }

  get pid(): number | undefined { return this.child?.pid; }

  get running(): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null; }

  async start(): Promise<void> {
    const args = this.httpPort === undefined ? [MEMBER, this.configFile] : [MEMBER, this.configFile, String(this.httpPort)];
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.leaderSince = undefined;
    child.stderr!.on('data', (d: Buffer) => { this.output += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => {
      this.#buf += d.toString();
      let nl: number;
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        this.#line(line);
      }
    });
    child.on('exit', () => {
      for (const a of this.#acks.values()) a.reject(new Error(`${this.name} exited`));
      this.#acks.clear();
      // A member that exits before its line (a start refused by its config) fails at once, not at the timeout.
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`${this.name} exited before "${w.prefix}"; output: ${this.output}`));
    });
    await this.#waitLine(this.httpPort === undefined ? 'READY' : 'HTTP', 60_000);
  }

  propose(n: number): Promise<number> {
    return new Promise((resolve, reject) => {
      if (!this.running) { reject(new Error(`${this.name} is not running`)); return; }
      this.#acks.set(n, { resolve, reject });
      this.child!.stdin!.write(`P ${n}\n`);
    });
  }

  async status(): Promise<MemberStatus> {
    this.child!.stdin!.write('S\n');
    return JSON.parse((await this.#waitLine('STATUS ', 5000)).slice(7)) as MemberStatus;
  }

  async leases(): Promise<number[]> {
    this.child!.stdin!.write('L\n');
    return JSON.parse((await this.#waitLine('LEASES ', 5000)).slice(7)) as number[];
  }

  /** kill -9: no chance to flush anything. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    await new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL'); });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
  }

  #line(line: string): void {
    if (line.startsWith('ACK ') || line.startsWith('ERR ')) {
      const [kind, n, ...rest] = line.split(' ');
      const a = this.#acks.get(Number(n));
      if (!a) return;
      this.#acks.delete(Number(n));
      if (kind === 'ACK') a.resolve(Number(rest[0]));
      else a.reject(new Error(rest.join(' ')));
      return;
    }
    if (line.startsWith('LEADER ')) {
      this.leaderSince = performance.now();
      this.onLeader?.(this.name, Number(line.slice(7)), this.leaderSince);
    }
    const i = this.#waiters.findIndex((w) => line.startsWith(w.prefix));
    if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(line);
  }

  #waitLine(prefix: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no "${prefix}" within ${timeoutMs} ms; output: ${this.output}`)), timeoutMs);
      this.#waiters.push({ prefix, resolve: (l) => { clearTimeout(timer); resolve(l); }, reject: (e) => { clearTimeout(timer); reject(e); } });
    });
  }
}

export interface LocalCluster {
  dir: string;
  members: MemberProcess[];
  leader(): MemberProcess | undefined;
  waitLeader(timeoutMs: number, not?: MemberProcess): Promise<MemberProcess>;
  stopAll(): Promise<void>;
  cleanup(): Promise<void>;
}

/** Options of a local cluster; `tls`: the members' links are mutual TLS (certificates made in its directory) instead of a shared key. */
export interface LocalClusterOptions { snapshotEntries?: number; witness?: boolean; http?: boolean; tls?: boolean }

export async function localCluster(size = 3, options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-cluster-'));
  const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  let security: (name: string) => string;
  if (options.tls === true) {
    const certs = makeClusterCerts(dir, 'test-cluster', names.map((name) => ({ name, address: '127.0.0.1' })), { ca: 30, member: 30 });
    security = (name) => `  tls: { ca: "${certs.caCert}", cert: "${certs.members[name]!.cert}", key: "${certs.members[name]!.key}" }`;
  } else {
    const keyFile = join(dir, 'cluster.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    security = () => `  keyFile: "${keyFile}"`;
  }
  // One call for all of them: ports picked one after another may repeat (each is free again once picked).
  const picked = await freePorts(options.http === true ? 2 * size : size);
  const ports = picked.slice(0, size);
  const httpPorts = options.http === true ? picked.slice(size) : [];
  const members = names.map((name, i) => {
    const role = options.witness === true && i === size - 1 ? 'witness' : 'server';
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, [
      'node:',
      `  name: ${name}`,
      `  role: ${role}`,
      `  stateDir: "${dir}/${name}"`,
      `  controlSocket: "${dir}/${name}.sock"`,
      'cluster:',
      '  id: test-cluster',
      security(name),
      `  snapshotEntries: ${options.snapshotEntries ?? 10000}`,
      '  members:',
      ...names.map((n, j) => `    - { name: ${n}, address: 127.0.0.1, port: ${ports[j]}, role: ${options.witness === true && j === size - 1 ? 'witness' : 'server'} }`),
      '',
    ].join('\n'));
    return new MemberProcess(name, file, httpPorts[i]);
  });
  const cluster: LocalCluster = {
    dir,
    members,
    leader: () => members.filter((m) => m.running && m.leaderSince !== undefined).sort((a, b) => b.leaderSince! - a.leaderSince!)[0],
    waitLeader: async (timeoutMs, not) => {
      const start = performance.now();
      let askedAt = start;
      for (;;) {
        const l = cluster.leader();
        if (l && l !== not) {
          // Confirm: still leader now. A status answer that did not come (a loaded machine) says
          // nothing: only a member saying it is not the leader loses its mark (a CI run at load 9
          // cleared a real leader's mark on a missed answer and waited out the 30 s).
          const st = await l.status().catch(() => undefined);
          if (st?.role === 'leader') return l;
          if (st !== undefined) l.leaderSince = undefined;
        } else if (performance.now() - askedAt >= 1000) {
          // No mark (its LEADER line was read before a mark was cleared): ask the members themselves.
          askedAt = performance.now();
          for (const m of members) {
            if (m === not || !m.running) continue;
            const st = await m.status().catch(() => undefined);
            if (st?.role === 'leader') { m.leaderSince = performance.now(); return m; }
          }
        }
        if (performance.now() - start > timeoutMs) {
          // What each member was doing: running or exited (how), and the end of its log.
          const states = await Promise.all(members.map(async (m) => {
            const st = m.running ? await m.status().catch(() => undefined) : undefined;
            const how = m.child === undefined ? 'never started'
              : m.running ? `running, ${st === undefined ? 'no status answer' : `role ${st.role}, term ${st.term}, commit ${st.commitIndex}, applied ${st.appliedIndex}, leader ${st.leader}`}`
                : `exited (${m.child.signalCode ?? `code ${m.child.exitCode}`})`;
            return `${m.name}: ${how}; last output: ${m.output.slice(-1500)}`;
          }));
          throw new Error(`no leader within ${timeoutMs} ms\n${states.join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    stopAll: async () => { await Promise.all(members.map((m) => m.stop())); },
    cleanup: async () => {
      await Promise.all(members.map((m) => m.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/**
 * A localCluster's members as `lanctl serve` daemons, by member name; every daemon still in the
 * map is stopped, and the directory removed, when the test ends (stop one and delete it from the
 * map to restart it by hand).
 */
export async function servedCluster(t: { teardown(fn: () => Promise<void>): void }, size = 3): Promise<{ cluster: LocalCluster; daemons: Map<string, ServedDaemon> }> {
  const cluster = await localCluster(size);
  const daemons = new Map<string, ServedDaemon>();
  t.teardown(async () => {
    for (const d of daemons.values()) await d.stop();
    await cluster.cleanup();
  });
  for (const m of cluster.members) daemons.set(m.name, await serveDaemon(m.configFile));
  return { cluster, daemons };
}
