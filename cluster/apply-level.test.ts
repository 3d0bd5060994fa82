import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { createLogger, silentLogger } from '../lib/log.js';
import { APPLY_LEVEL, BASE_LEVEL, ENVELOPE_LEVEL, clusterLevel, commandLevel, levelHold, levelHoldText, levelRefusal, logLevelText, olderForm, proposalCheck, unknownEntryError, type LogLevelStatus, type MemberLevel } from './apply-level.js';
import { formatMembers } from '../bin/commands-core.js';
import { RaftStateLog } from './raft-state-log.js';
import { decodeCommand, encodeCommand, type Command } from './commands.js';
import { decodeReport, encodeReport, memberRows, type MemberReport, type MemberRow } from './member-status.js';

// Proves the rule that keeps a rolling upgrade from forking the replicated state: a command is
// proposed only when every member reports an apply level that has it (members never heard from and
// versions before levels count as level 1), and a member handed an entry it does not know stops
// applying there, fenced and up, with an error naming what to do, where it used to exit and be
// restarted into the same entry with "storage failed".

const table = { 'lease.grant': 1, 'dhcp.future': 2 };
const future = { type: 'dhcp.future' } as unknown as Command;

t.test('levels: every command of this build is of a level it applies; unknown types never pass', async (t) => {
  t.equal(BASE_LEVEL, 1);
  t.ok(APPLY_LEVEL >= BASE_LEVEL);
  t.equal(commandLevel({ type: 'lease.grant' }), 1);
  t.equal(commandLevel(future), Infinity, 'a type this build does not know');
  t.equal(commandLevel(future, table), 2);
  t.equal(clusterLevel([{ name: 'a', level: 3, version: 'x' }, { name: 'w', level: null, version: '0.1.0' }]), BASE_LEVEL, 'a member without a level counts as the base');
});

t.test('a command of a newer level is refused while any member cannot apply it, naming that member and what to do', async (t) => {
  const all2: MemberLevel[] = [{ name: 'lan-a', level: 2, version: '0.2.0' }, { name: 'lan-b', level: 2, version: '0.2.0' }, { name: 'witness', level: 2, version: '0.2.0' }];
  t.equal(levelRefusal(future, all2, table), null, 'every member at level 2: proposed');
  t.equal(levelRefusal({ type: 'lease.grant' }, [{ name: 'witness', level: null, version: null }], table), null, 'level-1 commands always go');
  const old = levelRefusal(future, [all2[0]!, all2[1]!, { name: 'witness', level: null, version: '0.1.0' }], table);
  t.match(old, "a 'dhcp.future' entry needs apply level 2 on every member, and witness (lanha 0.1.0, apply level 1: a version before apply levels) cannot apply it");
  t.match(old, 'upgrade that member to a lanha of apply level 2 or later');
  const unheard = levelRefusal(future, [all2[0]!, { name: 'lan-b', level: null, version: null }, { name: 'witness', level: 1, version: '0.1.5' }], table);
  t.match(unheard, 'lan-b (not heard from since this node started: counted as level 1), witness (lanha 0.1.5, apply level 1)');
  t.match(unheard, 'upgrade those members');
});

t.test('member reports carry the apply level; one without it (an older member) reads as null, a bad one is refused', async (t) => {
  const base: MemberReport = { node: 'lan-b', version: '0.1.0', configHash: 'h', role: 'follower', leader: 'lan-a', term: 2, commitIndex: 9, appliedIndex: 9, lastIndex: 9, walFsyncP99Ms: null, bootFiles: null, sentWallMs: 1, echo: null };
  const withLevel = decodeReport(encodeReport({ ...base, applyLevel: 2 }));
  t.ok(withLevel.ok && withLevel.value.applyLevel === 2, 'level 2 read');
  const without = decodeReport(encodeReport(base));
  t.ok(without.ok && without.value.applyLevel === undefined, 'absent: a version before levels');
  t.notOk(decodeReport(encodeReport({ ...base, applyLevel: -1 })).ok, 'a negative level is a bad field');
  t.notOk(decodeReport(new TextEncoder().encode(JSON.stringify({ ...base, applyLevel: '2' }))).ok, 'a string level is a bad field');
  if (!without.ok) return;
  const rows = memberRows(['lan-a', 'lan-b', 'witness'], { ...base, node: 'lan-a', role: 'leader', applyLevel: 2 },
    { 'lan-b': { report: without.value, receivedAt: '', lastContactMs: 5, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null } });
  t.same(rows.map((r) => [r.name, r.applyLevel, r.version]), [['lan-a', 2, '0.1.0'], ['lan-b', null, '0.1.0'], ['witness', null, null]]);
});

t.test("the daemon's check over the member rows: a command above level 1 waits for every configured member's report of its level", async (t) => {
  const top = Math.max(...(['lease.merge', 'lease.grant'] as const).map((type) => commandLevel({ type })));
  t.ok(APPLY_LEVEL >= top, `this build applies every level it proposes (${APPLY_LEVEL})`);
  const report = (node: string, applyLevel?: number): MemberReport => ({ node, version: '0.1.0', configHash: 'h', role: 'follower', leader: 'lan-a', term: 2, commitIndex: 9, appliedIndex: 9, lastIndex: 9, walFsyncP99Ms: null, bootFiles: null, sentWallMs: 1, echo: null, ...(applyLevel === undefined ? {} : { applyLevel }) });
  const view = (r: MemberReport) => ({ report: r, receivedAt: '', lastContactMs: 5, clockOffsetMs: 0, offsetMethod: 'one-way' as const, roundTripMs: null, bootFiles: null });
  let views: Record<string, ReturnType<typeof view>> = {};
  let built = 0;
  const check = proposalCheck(() => { built++; return memberRows(['lan-a', 'lan-b', 'witness'], { ...report('lan-a', APPLY_LEVEL), role: 'leader' }, views); });
  t.equal(check({ type: 'lease.grant' }), null, 'a level-1 command goes');
  t.equal(built, 0, 'without building the member rows (every DHCP ACK passes here)');
  if (top <= BASE_LEVEL) return; // no command above level 1 in this build
  const merge = { type: 'lease.merge' } as const;
  t.match(check(merge), 'lan-b (not heard from since this node started: counted as level 1), witness (not heard from', 'nobody heard from yet: refused');
  views = { 'lan-b': view(report('lan-b', APPLY_LEVEL)), witness: view(report('witness')) };
  t.match(check(merge), `needs apply level ${top} on every member, and witness (lanha 0.1.0, apply level 1: a version before apply levels) cannot apply it`, 'an old witness: refused, named');
  views = { 'lan-b': view(report('lan-b', APPLY_LEVEL)), witness: view(report('witness', APPLY_LEVEL)) };
  t.equal(check(merge), null, 'every member reports the level: proposed');
});

t.test('what waits for a member unheard from or on a lower level: status says which commands, for whom, why, and what lets them go', async (t) => {
  const at2 = (name: string): MemberLevel => ({ name, level: 2, version: '0.1.0' });
  t.equal(levelHold([at2('lan-a'), at2('lan-b'), at2('witness')], 2), null, 'every member at the level: nothing waits');
  t.equal(levelHold([{ name: 'lan-a', level: 1, version: '0.1.0' }, { name: 'witness', level: null, version: null }], 1), null, 'a level-1 member holds nothing back');
  const unheard = levelHold([at2('lan-a'), at2('lan-b'), { name: 'witness', level: null, version: null }], 2);
  t.match(unheard, { from: 2, to: 2, behind: [{ name: 'witness' }] });
  const text = levelHoldText(unheard!);
  t.match(text, 'commands of apply level 2 (lease.merge: a lone member\'s degraded DHCP journal merged into the leases; the journal is kept on the disk of the member that wrote it meanwhile) are not proposed');
  t.match(text, 'witness has sent no report since this node started (down, unreachable, or a version without member reports), so it counts as level 1');
  t.match(text, 'They go by themselves once every member reports level 2: start or reach witness (lanctl status there; its service, the network to it)');
  const both = levelHoldText(levelHold([at2('lan-a'), { name: 'lan-b', level: null, version: '0.1.0' }, { name: 'witness', level: null, version: null }], 2)!);
  t.match(both, 'witness has sent no report since this node started');
  t.match(both, 'lan-b runs lanha 0.1.0 at apply level 1 (a version before apply levels)');
  t.match(both, 'start or reach witness (lanctl status there; its service, the network to it), and upgrade lan-b (README, "Upgrading a cluster")');
  // lanctl status, under the member table, from the rows the daemon sends.
  const row = (name: string, local: boolean, applyLevel: number | null, reported: boolean): MemberRow => ({ name, local, reported, role: null, leader: null, term: null, commitIndex: null, appliedIndex: null, lagEntries: null, lastContactMs: null, clockOffsetMs: null, offsetMethod: null, version: reported ? '0.1.0' : null, configHash: null, walFsyncP99Ms: null, dnsSerial: null, vipHeld: null, ackAudit: null, applyLevel, sameState: null });
  const status = formatMembers([row('lan-a', true, 2, true), row('lan-b', false, 2, true), row('witness', false, null, false)]);
  t.match(status, /^LEVEL HELD: commands of apply level 2 \(lease\.merge: .*witness has sent no report since this node started/m, 'status says what waits and why');
  t.notMatch(formatMembers([row('lan-a', true, 2, true), row('lan-b', false, 2, true), row('witness', false, 2, true)]), 'LEVEL HELD', 'nothing held: no line');
  t.notMatch(formatMembers([row('lan-a', true, 1, true), row('lan-b', false, null, false)]), 'LEVEL HELD', 'a member of level 1 holds nothing back');
});

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-level-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const open = (dir: string): Promise<RaftStateLog> => RaftStateLog.open({ id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger });

t.test('the proposal check refuses before anything is written', async (t) => {
  const log = await open(scratch(t));
  try {
    log.setProposalCheck((c) => (c.type === 'dns.set' ? 'refused for the test' : null));
    const before = log.fsm.appliedIndex;
    await t.rejects(log.propose({ type: 'dns.set', name: 'a.lab.test', rrtype: 'A', ttl: 60, data: '10.0.0.1' }), { message: 'refused for the test' });
    t.equal(log.fsm.appliedIndex, before, 'nothing proposed');
    await log.propose({ type: 'dns.delete', name: 'a.lab.test' });
    t.equal(log.fsm.appliedIndex, before + 1, 'other commands go through');
  } finally {
    await log.close();
  }
});

t.test('an entry of a type this build does not know: applying stops there, fenced and up, and the error says what to do', async (t) => {
  const dir = scratch(t);
  const log = await open(dir);
  let fatal: Error | null = null;
  log.onFatal((e) => { fatal = e; });
  const grant: Command = { type: 'lease.grant', ip: 0x0a000001, mac: '02:00:00:00:00:01', subnet: '10.0.0.0/24', leaseMs: 60_000 };
  await log.propose(grant);
  const applied = log.fsm.appliedIndex;
  // What a newer leader would have committed: this build writes it as it would any command.
  await t.rejects(log.propose(future), /cannot be applied/);
  t.equal(log.fsm.appliedIndex, applied, 'the entry is not applied, nor anything after it');
  t.equal(fatal, null, 'no exit: a restart would stop at the same entry again');
  const status = log.status();
  t.match(status['applyStopped'], `cannot be applied: a 'dhcp.future' command, which this lanha (apply level ${APPLY_LEVEL}) does not know`);
  t.match(status['applyStopped'], 'Upgrade this member to the version the other members run');
  t.notOk(log.isLeader(), 'it stops leading');
  await t.rejects(log.propose(grant), /cannot be applied/, 'and accepts no writes');
  await log.close();
  // The same at a start (a member downgraded, or restored from an older package, on that log): the
  // replay stops at the entry and the member comes up fenced, as at run time. It used to exit 1 and
  // be restarted into the same entry every RestartSec, DNS, TFTP and NTP down meanwhile.
  const lines: Array<{ event?: string; applyStopped?: boolean; fenced?: boolean }> = [];
  const again = await RaftStateLog.open({ id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1),
    log: createLogger({ level: 'debug', destination: { write: (line: string) => { lines.push(JSON.parse(line) as { event?: string }); } } }) });
  try {
    let fatalAgain: Error | null = null;
    again.onFatal((e) => { fatalAgain = e; });
    t.equal(again.fsm.appliedIndex, applied, 'started: everything before the entry applied, the entry not');
    t.ok(again.fsm.lease(grant.ip), 'the state before it is served');
    t.match(again.status()['applyStopped'], /entry \d+ cannot be applied: a 'dhcp\.future' command.*Upgrade this member/, 'status: the same words as at run time');
    t.notOk(again.isLeader(), 'it does not lead');
    await t.rejects(again.propose(grant), /cannot be applied/, 'nor take writes');
    t.ok(lines.some((l) => l.event === 'raft.entry_too_new'), 'the run-time event, raft.entry_too_new');
    t.ok(lines.some((l) => l.event === 'raft.opened' && l.applyStopped === true && l.fenced === true), 'raft.opened says it started fenced');
    t.notOk(lines.some((l) => l.event === 'raft.storage_failed'), 'not reported as a storage failure');
    await new Promise((r) => setTimeout(r, 300));
    t.equal(fatalAgain, null, 'no exit');
    t.equal(again.fsm.appliedIndex, applied, 'still stopped there');
  } finally {
    await again.close();
  }
});

// Builds before envelope 2 read a command as it came and ignored the fields they did not know, so
// a member downgraded to one after a level-3 entry committed (node.remove with unlessInJob, a
// deploy job with inventory, node.boot with at) applied it in its older meaning without stopping:
// the node removed there and kept on the others. Now such an entry goes in envelope 2, which those
// builds refuse (`o.v !== 1`: a newer entry, they stop there), and this build stops at an envelope-2
// entry carrying a field it does not know, so every field added later stops older builds too.
const enc = (command: Command, by?: string): Record<string, unknown> => JSON.parse(new TextDecoder().decode(encodeCommand({ at: 7, ...(by === undefined ? {} : { by }), command }))) as Record<string, unknown>;
const raw = (entry: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(entry));

t.test('an entry carrying a field added after its type goes in envelope 2, which builds before it refuse', async (t) => {
  t.equal(APPLY_LEVEL, ENVELOPE_LEVEL);
  const guarded: Command = { type: 'node.remove', name: 'c1', unlessInJob: true };
  t.same(enc(guarded, 'lan-a'), { v: 2, l: ENVELOPE_LEVEL, at: 7, by: 'lan-a', c: guarded }, 'node.remove with unlessInJob');
  t.same(enc({ type: 'deploy.job.resume', job: 'j1', member: 'lan-a', run: 1, inventory: ['c1'] }).v, 2, 'a job resume with inventory');
  t.same(enc({ type: 'node.boot', mac: '02:00:00:00:00:01', event: 'power cycle ok', at: 5 }).v, 2, 'a boot event with its own time');
  t.equal(commandLevel(guarded), ENVELOPE_LEVEL, 'so it is proposed only once every member reports that level');
  t.same(olderForm(guarded, 3), { type: 'node.remove', name: 'c1' }, 'below it, the older form: no field a level-3 build would write in envelope 1');
  // Without such a field: envelope 1, byte for byte what the builds before wrote.
  const plain: Command = { type: 'node.remove', name: 'c1' };
  t.equal(new TextDecoder().decode(encodeCommand({ at: 7, by: 'lan-a', command: plain })), '{"v":1,"at":7,"by":"lan-a","c":{"type":"node.remove","name":"c1"}}');
  t.same(enc({ type: 'lease.merge', node: 'lan-b', journal: 'j', from: 1, upTo: 1, records: [] }).v, 1, 'a newer command type needs no envelope 2: older builds refuse its type');
  // What the builds before envelope 2 do with it: their decoder (fa19178^ and every build before)
  // refused any version but 1 as an entry of a newer lanha when it was above 1.
  const older = (entry: { v?: unknown }): string => (entry.v !== 1 ? (Number.isSafeInteger(entry.v) && (entry.v as number) > 1 ? 'stops: newer' : 'refused') : 'applied, fields ignored');
  t.equal(older(enc(guarded)), 'stops: newer');
  t.equal(older(enc(plain)), 'applied, fields ignored');
  // This build reads it back whole, with the level it needs.
  t.same(decodeCommand(encodeCommand({ at: 7, command: guarded })), { ok: true, value: { at: 7, command: guarded }, level: ENVELOPE_LEVEL, envelope: 2 });
});

t.test('envelope 2 with a field, an envelope key or a level this build does not know: the member stops (newer), it does not apply it', async (t) => {
  const c = { type: 'node.remove', name: 'c1', unlessInJob: true };
  const field = decodeCommand(raw({ v: 2, l: ENVELOPE_LEVEL, at: 7, c: { ...c, unlessDrained: true } }));
  t.same(field, { ok: false, newer: true, error: `a 'node.remove' command with a field "unlessDrained", which this lanha (apply level ${APPLY_LEVEL}) does not know` });
  t.match(unknownEntryError(12, field.ok ? '' : field.error, null), /^entry 12 cannot be applied: a 'node.remove' command with a field "unlessDrained".*Upgrade this member/);
  t.same(decodeCommand(raw({ v: 2, l: APPLY_LEVEL + 1, at: 7, c })), { ok: false, newer: true, error: `the entry needs apply level ${APPLY_LEVEL + 1}, above this lanha's ${APPLY_LEVEL}` });
  t.same(decodeCommand(raw({ v: 2, l: ENVELOPE_LEVEL, at: 7, c, why: 'x' })), { ok: false, newer: true, error: `the entry has an envelope field "why" this lanha (apply level ${APPLY_LEVEL}) does not know` });
  t.same(decodeCommand(raw({ v: 3, at: 7, c })), { ok: false, newer: true, error: 'unknown command version 3' });
  const bad = decodeCommand(raw({ v: 2, l: 'x', at: 7, c }));
  t.ok(!bad.ok && bad.newer === undefined, 'a broken envelope is damage, not a newer entry');
  t.same(decodeCommand(raw({ v: 2, l: ENVELOPE_LEVEL, at: 7, c: { type: 'dhcp.future' } })), { ok: false, newer: true, type: 'dhcp.future', error: "entry has an unknown command type 'dhcp.future'" });
});

t.test('logs written before envelope 2 read as before; a stray key never reaches the log', async (t) => {
  // A level-3 build wrote the fields in envelope 1: applied with them, needing level 3.
  const v1 = decodeCommand(raw({ v: 1, at: 7, c: { type: 'node.remove', name: 'c1', unlessInJob: true } }));
  t.same(v1, { ok: true, value: { at: 7, command: { type: 'node.remove', name: 'c1', unlessInJob: true } }, level: 3, envelope: 1 });
  // Envelope 1 ignores what it does not know, as every build before did (they wrote it and never applied it).
  const counts = { type: 'rootfs.commit', generation: 'ab'.repeat(32), member: 'lan-a', source: '/t', files: 1, dirs: 1, symlinks: 0, others: 2, hardlinks: 0, bytes: 5 };
  t.ok(decodeCommand(raw({ v: 1, at: 7, c: counts })).ok, 'rootfs.commit with others, as the builds before wrote it');
  t.ok(decodeCommand(raw({ v: 1, at: 7, c: { type: 'dns.delete', name: 'a.lab.test', label: 'x' } })).ok, 'envelope 1: an unknown field ignored, as before');
  // A command built from a wider object loses the keys its type does not have.
  const wide = { type: 'dns.delete', name: 'a.lab.test', stray: 1 } as unknown as Command;
  t.same(enc(wide), { v: 1, at: 7, c: { type: 'dns.delete', name: 'a.lab.test' } });
  const wideGuarded = { type: 'node.remove', name: 'c1', unlessInJob: true, stray: 1 } as unknown as Command;
  const back = decodeCommand(encodeCommand({ at: 7, command: wideGuarded }));
  t.ok(back.ok, 'an envelope-2 entry never carries a key its own build would stop at');
});

t.test('what the applied log needs, for a rollback: the level since which index, what older builds do, whether the snapshot is past it', async (t) => {
  t.equal(logLevelText({ spans: [], snapshotIndex: 0 }), null, 'nothing above level 1: no line');
  const dir = scratch(t);
  const log = await open(dir);
  try {
    await log.propose({ type: 'node.add', name: 'c1', mac: '02:00:00:00:00:c1' });
    await log.propose({ type: 'node.remove', name: 'c1', unlessInJob: true });
    const first = log.fsm.appliedIndex;
    // An entry a level-3 build wrote: the field in envelope 1.
    const r = log.host.node.propose(new TextEncoder().encode(JSON.stringify({ v: 1, at: Date.now(), c: { type: 'node.boot', mac: '02:00:00:00:00:c1', event: 'power cycle ok', at: 5 } })));
    t.ok(r.ok);
    log.host.kick();
    for (let i = 0; i < 250 && log.fsm.appliedIndex < (r.ok ? r.index : 0); i++) await new Promise((res) => setTimeout(res, 20));
    const status = log.status()['logLevel'] as LogLevelStatus;
    t.same(status.spans, [{ level: 4, first, last: first, silent: false }, { level: 3, first: first + 1, last: first + 1, silent: true }]);
    const text = logLevelText(status)!;
    t.match(text, `the log this member applied needs apply level 4 since index ${first} (level 4 in entries ${first}..${first}: builds below level 4 stop at them`);
    t.match(text, `level 3 in entries ${first + 1}..${first + 1}: builds below level 3 apply them WITHOUT stopping, in their older meaning`);
    t.match(text, `safe only once its snapshot is past index ${first + 1} (now at 0;`);
    t.match(logLevelText({ ...status, snapshotIndex: first + 1 }), `its snapshot (index ${first + 1}) is past them`);
  } finally {
    await log.close();
  }
});
