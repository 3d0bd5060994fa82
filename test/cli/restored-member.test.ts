// A member's state directory restored from an old copy, end to end: three daemons in this process
// on loopback (lan-a, lan-b, a witness). A LAN member that is not the leader is stopped, its
// node.stateDir copied, started again; it acknowledges 30 more entries and is stopped; the copy is
// put back and it starts on it. Its log then ends before what it had acknowledged (Raft
// "amnesia"): the leader's heartbeat says so, it logs raft.amnesia with what to do, votes for no
// one until caught up past it, and is caught up (every lease there, the leader's state hash).
// Before, nothing noticed it (cluster/raft/README.md, "Restored from an old backup").
import t from 'tap';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { startDaemon, type Daemon } from '../../bin/daemon.js';
import type { LanhaConfig } from '../../config/index.js';
import { freePorts } from '../support/ports.js';

t.setTimeout(180_000);

interface Line { event?: string; msg?: string; acked?: number; lastIndex?: number }

async function until(what: string, condition: () => boolean, ms = 20_000): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('a member started on an old copy of its state directory is found out and caught up past what it had acknowledged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-restored-'));
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const names = ['lan-a', 'lan-b', 'witness'];
  const ports = await freePorts(3);
  const configs = new Map<string, LanhaConfig>(names.map((name) => [name, parseConfig(`node: { name: ${name}, role: ${name === 'witness' ? 'witness' : 'server'}, stateDir: "${dir}/${name}", controlSocket: "${dir}/${name}.sock" }
cluster:
  id: restored-test
  keyFile: "${keyFile}"
  members:
${names.map((n, j) => `    - { name: ${n}, address: 127.0.0.1, port: ${ports[j]}${n === 'witness' ? ', role: witness' : ''} }`).join('\n')}
`)]));
  const daemons = new Map<string, Daemon>();
  const lines: Line[] = [];
  const start = async (name: string): Promise<Daemon> => {
    const log = name === 'witness' ? silentLogger : createLogger({ level: 'info', node: name, destination: { write: (s: string) => { lines.push(JSON.parse(s) as Line); } } });
    const d = await startDaemon(configs.get(name)!, { log });
    daemons.set(name, d);
    return d;
  };
  const stop = async (name: string): Promise<void> => { await daemons.get(name)!.stop(); daemons.delete(name); };
  t.teardown(async () => {
    for (const d of [...daemons.values()].reverse()) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const name of names) await start(name);
  const leaderName = (): string | undefined => [...daemons.entries()].find(([, d]) => d.state.isLeader())?.[0];
  await until('a LAN member to lead', () => leaderName() !== undefined && leaderName() !== 'witness');
  const leader = daemons.get(leaderName()!)!;
  const victim = names.find((n) => n !== 'witness' && n !== leaderName())!;
  const grant = (i: number): Promise<unknown> => leader.state.propose({ type: 'lease.grant', ip: 0x0a000000 + i, mac: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`, subnet: '10.0.0.0/8', leaseMs: 3_600_000 });
  for (let i = 1; i <= 10; i++) await grant(i);
  await until('the victim to apply them', () => daemons.get(victim)!.state.fsm.appliedIndex === leader.state.fsm.appliedIndex);

  await stop(victim);
  cpSync(join(dir, victim), join(dir, `${victim}.copy`), { recursive: true });
  await start(victim);
  for (let i = 11; i <= 40; i++) await grant(i);
  await until('the victim to apply the 30 more', () => daemons.get(victim)!.state.fsm.appliedIndex === leader.state.fsm.appliedIndex);
  const acked = daemons.get(victim)!.state.status()['lastIndex'] as number;
  await stop(victim);
  rmSync(join(dir, victim), { recursive: true });
  cpSync(join(dir, `${victim}.copy`), join(dir, victim), { recursive: true });
  lines.length = 0;

  const restored = await start(victim);
  const startedAt = restored.state.status()['lastIndex'] as number;
  t.ok(startedAt < acked, `started on the copy: its log ends at ${startedAt}, before the ${acked} it had acknowledged`);
  await until('raft.amnesia', () => lines.some((l) => l.event === 'raft.amnesia'));
  const line = lines.find((l) => l.event === 'raft.amnesia')!;
  t.match(line, { acked, lastIndex: startedAt }, 'raft.amnesia: what it had acknowledged, where its log ended');
  t.match(line.msg, /neither votes nor campaigns until .* Never restore a member's Raft directory from a backup/, 'what it does and what to do');
  await until('caught up', () => restored.state.fsm.appliedIndex === leader.state.fsm.appliedIndex && restored.state.fsm.appliedIndex >= acked);
  await grant(41);
  await until('the rebuild to end', () => lines.some((l) => l.event === 'raft.rebuilt') && restored.state.fsm.appliedIndex === leader.state.fsm.appliedIndex);
  t.notOk(restored.state.status()['rebuilding'], 'votes again');
  t.ok([...Array(41).keys()].every((i) => restored.state.fsm.lease(0x0a000001 + i) !== undefined), 'all 41 leases on the restored member');
  t.equal(restored.state.fsm.hash(), leader.state.fsm.hash(), 'the leader\'s state hash');
});
