// `lanctl nodes remove` and `lanctl deploy rootfs` of the same node fired at once, many times: both
// pass their checks on the leader before either entry applied (one commit round), and the log decides.
// Before, both could commit: the node left the inventory while a job that had not started on it went
// on to sync it. Now whichever entry commits second is a no-op on every member: a removal after the
// job's start is refused naming the job, a job start after the removal fails naming the node, and
// the replicas applying the same entries agree. Seeded: a failing seed is printed.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobRunner } from './jobs.js';
import { generationDir } from './store.js';
import { deployConfig } from './config.js';
import { Fsm, type AppliedEntry } from '../fsm.js';
import type { StateLog, StateLogStatus } from '../state-log.js';
import type { Command } from '../commands.js';
import { inventoryRoutes } from '../inventory-api.js';
import { until } from '../../test/support/state-log.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { parseCidr } from '../../lib/ipv4.js';
import { sshKeyPair } from '../../test/support/ssh-keys.js';

/** Seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A leader's log in commit rounds: proposals made in one turn of the event loop commit together on
 * the next, in an order the seed picks (as proposals from two requests reach the log), and are
 * applied to this member's Fsm and to two more replicas.
 */
class RoundLog implements StateLog {
  readonly fsm = new Fsm();
  readonly replicas = [new Fsm(), new Fsm()];
  #index = 0;
  #queue: Array<{ command: Command; done: (e: AppliedEntry) => void }> = [];
  constructor(readonly random: () => number) {}
  isLeader(): boolean { return true; }
  status(): StateLogStatus { return { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 1, commitIndex: this.#index, appliedIndex: this.#index }; }
  async close(): Promise<void> { /* nothing held */ }
  propose(command: Command): Promise<AppliedEntry> {
    if (this.#queue.length === 0) setImmediate(() => this.#round());
    return new Promise((done) => this.#queue.push({ command, done }));
  }
  #round(): void {
    const round = this.#queue.splice(0);
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    for (const p of round) {
      const at = Math.max(this.fsm.lastAt, Date.now());
      const index = ++this.#index;
      for (const fsm of [this.fsm, ...this.replicas]) fsm.apply(index, { at, command: p.command });
      p.done({ index, at, command: p.command });
    }
  }
}

t.test('a node removal and a deploy job fired at once: exactly one commits, on every replica', async (t) => {
  const seed = Number(process.env['SEED'] ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed} (SEED=${seed} repeats this run)`);
  const dir = mkdtempSync(join(tmpdir(), 'lanha-remove-race-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  const generation = 'a'.repeat(64);
  mkdirSync(join(generationDir(stateDir, generation), 'etc'), { recursive: true });
  const state = new RoundLog(rng(seed));
  const log = createLogger({ level: 'silent' });
  const runner = new JobRunner({ config: deployConfig.parse({ rootfs: { destination: '/srv/root' } }), targets: () => [], clusterId: 'c', member: 'lan-a', stateDir, state, log, clock: systemClock });
  t.teardown(() => runner.stop());
  const api = inventoryRoutes({ state, clock: new ManualClock(), reservations: [], context: () => ({ subnets: [parseCidr('10.0.0.0/24')!] }) });
  await state.propose({ type: 'rootfs.commit', generation, member: 'lan-a', source: '/src', files: 0, dirs: 2, symlinks: 0, hardlinks: 0, bytes: 0 });
  // Port 1 on loopback: nothing listens, so a job that starts fails on the node at once.
  const hostKey = sshKeyPair().public;
  const target = { node: 'c1', host: '127.0.0.1', port: 1, user: 'root', groups: [], hostKey };
  const outcomes = { removed: 0, started: 0 };
  const ROUNDS = 40;
  for (let round = 0; round < ROUNDS; round++) {
    if (state.fsm.inventory.byName('c1') === undefined) await state.propose({ type: 'node.add', name: 'c1', mac: '52:54:00:00:00:11' });
    // Both in the same turn: each passes its own check before either entry applied.
    const [removal, start] = await Promise.all([
      api['POST /v1/nodes/remove']!({ query: new URLSearchParams(), body: { name: 'c1' } }),
      runner.startRootfs(generation, [target], false).then((id) => ({ id }), (error: unknown) => ({ error: String(error) })),
    ]);
    const removed = state.fsm.inventory.byName('c1') === undefined;
    const job = 'id' in start ? state.fsm.rootfs.job(start.id) : undefined;
    if (removed === (job !== undefined)) {
      t.fail(`round ${round} (seed ${seed}): ${removed ? 'the node was removed and the job started on it too' : 'neither happened'}: ${JSON.stringify({ removal, start })}`);
      break;
    }
    if (removed) {
      outcomes.removed++;
      t.match(start, { error: /c1 was removed from the inventory .* as the job started, and the removal committed first: nothing was started or sent/ }, `round ${round}: the job start says why`);
    } else {
      outcomes.started++;
      t.match(removal, { status: 409, body: { error: new RegExp(`^c1 is in deploy job ${job!.id}, still running`) } }, `round ${round}: the removal names the job`);
      await until('the job ends', () => state.fsm.rootfs.job(job!.id)?.state !== 'running' && !runner.isActive(job!.id), 60_000);
    }
    t.equal(state.replicas[0]!.hash(), state.fsm.hash(), `round ${round}: the replicas agree`);
    t.equal(state.replicas[1]!.hash(), state.fsm.hash());
  }
  t.comment(`removal first ${outcomes.removed} times, job first ${outcomes.started} times in ${ROUNDS} rounds`);
  t.ok(outcomes.removed > 0 && outcomes.started > 0, 'both orders were taken');
});
