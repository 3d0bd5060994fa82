// The degraded journal file: records read back in order, a torn tail (a crash mid-write) and a
// damaged record cut at the start as the WAL cuts its unsynced tail, a rewrite keeping the numbers;
// compaction keeps what the merge makes of the whole journal, and a crash at each step of it (the
// new file written, fsync'd, renamed, the directory fsync'd) leaves the old journal or the new one.
import t from 'tap';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournalWriter, appendFrameSync, compactRecords, journalBytes, readJournal, rewriteJournal, supersededCount } from './degraded-journal.js';
import { mergeRecord, type DegradedRecord } from '../../cluster/degraded.js';
import type { Lease } from '../../cluster/fsm.js';
import { randomFor, seedsToRun } from '../../test/support/seeded.js';
import type { DurableStep } from '../../lib/durable-file.js';

const rec = (n: number): DegradedRecord => ({ ip: 0x0a000000 + n, mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`, subnet: '10.0.0.0/24', state: 'bound', at: 1000 * n, expiresAt: 1000 * n + 60_000 });

t.test('append, read back, torn tail cut, rewrite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'j');
  t.equal(readJournal(path), null, 'no file: no journal');
  writeFileSync(path, journalBytes('j1', 1, []));
  const w = new JournalWriter(path);
  await Promise.all([w.append(rec(1)), w.append(rec(2)), w.append(rec(3))]);
  await w.close();
  t.same(readJournal(path), { journal: 'j1', from: 1, records: [rec(1), rec(2), rec(3)], cutBytes: 0 }, 'in order, queued appends');
  const whole = statSync(path).size;
  appendFileSync(path, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 0x7b])); // a frame cut short by a crash
  const torn = readJournal(path);
  t.equal(torn?.records.length, 3);
  t.equal(torn?.cutBytes, 9, 'the torn tail is cut');
  t.equal(statSync(path).size, whole, '... from the file too');
  appendFrameSync(path, rec(4));
  const bytes = readFileSync(path);
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff; // a flipped bit in the last record: its CRC fails
  writeFileSync(path, bytes);
  t.same(readJournal(path)?.records, [rec(1), rec(2), rec(3)], 'a record whose CRC fails is not read (nor anything after it)');
  t.same(readJournal(path)?.records, [rec(1), rec(2), rec(3)], 'and reads the same again');
  await rewriteJournal(path, 'j1', 3, [rec(3)]);
  t.same(readJournal(path), { journal: 'j1', from: 3, records: [rec(3)], cutBytes: 0 }, 'a rewrite after a merge keeps the numbering');
  appendFrameSync(path, { ip: 'not an address' });
  t.same(readJournal(path)?.records, [rec(3)], 'a record that does not check is cut like a torn one');
});

/** What the merge makes of records (per address, in order, as lease.merge applies them): the lease per address. */
function merged(records: readonly DegradedRecord[]): Record<number, Pick<Lease, 'mac' | 'state' | 'expiresAt' | 'grantedAt' | 'changedAt'>> {
  const leases = new Map<number, Lease>();
  for (const r of records) {
    const o = mergeRecord(leases.get(r.ip), r, 1, 'lan-a');
    if (o.kind === 'set') leases.set(r.ip, o.lease);
  }
  return Object.fromEntries([...leases].map(([ip, l]) => [ip, { mac: l.mac, state: l.state, expiresAt: l.expiresAt, grantedAt: l.grantedAt, changedAt: l.changedAt }]));
}

/** A day alone, shortened: clients renewing, some leases shorter on renewal, releases, another client taking a released address. */
function journalOf(seed: number, count: number): DegradedRecord[] {
  const r = randomFor(seed);
  const out: DegradedRecord[] = [];
  let at = 1_000_000;
  for (let i = 0; i < count; i++) {
    at += 1 + r.int(1000);
    const ip = 0x0a000000 + r.int(12);
    const last = [...out].reverse().find((x) => x.ip === ip);
    const mac = last !== undefined && last.state !== 'released' ? last.mac : `02:00:00:00:${r.int(4)}:${ip & 0xff}`;
    const k = r.int(10);
    out.push(k === 0 ? { ip, mac, subnet: 's', state: 'released', at, expiresAt: at }
      : { ip, mac, subnet: 's', state: 'bound', at, expiresAt: at + 1000 + r.int(60_000) });
  }
  return out;
}

t.test('compaction keeps the newest record per (ip, mac) and what the merge makes of the whole journal', async (t) => {
  const a = rec(1), b = rec(2);
  const renewals = [a, b, { ...a, at: 5000, expiresAt: 70_000 }, { ...b, at: 6000, expiresAt: 71_000 }, { ...a, at: 7000, expiresAt: 72_000 }];
  t.same(compactRecords(renewals), renewals.slice(0, 2).concat(renewals.slice(3)), 'each client\'s first grant and newest renewal, in order');
  t.equal(supersededCount(renewals), 1);
  t.equal(merged(compactRecords(renewals))[a.ip]!.grantedAt, a.at, 'the merged binding keeps its first grant time, not its newest renewal\'s');
  const long = [a, ...Array.from({ length: 20 }, (_, i) => ({ ...a, at: 2000 + i * 1000, expiresAt: 62_000 + i * 1000 }))];
  t.same(compactRecords(long), [long[0], long[20]], 'twenty renewals: the first grant and the newest');
  const another = [a, { ...a, state: 'released' as const, at: 2000, expiresAt: 2000 }, { ...a, mac: 'other', at: 3000, expiresAt: 4000 }, { ...a, at: 5000, expiresAt: 65_000 }, { ...a, at: 6000, expiresAt: 66_000 }];
  t.same(compactRecords(another), another.slice(2), 'after another client held the address, the run begins anew');
  t.equal(merged(compactRecords(another))[a.ip]!.grantedAt, 5000);
  const shorter = [{ ...a, expiresAt: 90_000 }, { ...a, at: 5000, expiresAt: 70_000 }];
  t.same(compactRecords(shorter), shorter, 'an older binding that ends later is kept too (the merge keeps the later end)');
  const released = [a, { ...a, at: 5000, expiresAt: 90_000 }, { ...a, state: 'released' as const, at: 6000, expiresAt: 6000 }];
  t.same(compactRecords(released), [released[2]], 'released after: the release alone');
  const pairs = [a, b, { ...a, state: 'released' as const, at: 3000, expiresAt: 3000 }, { ...a, at: 4000 }, { ...a, at: 5000, expiresAt: 80_000 }];
  t.same(compactRecords(pairs), [b, pairs[3], pairs[4]], 'a release ends the run: the first grant after it is kept');
  let records = 0, kept = 0;
  for (const seed of seedsToRun(200, 1)) {
    const journal = journalOf(seed, 300);
    const compacted = compactRecords(journal);
    records += journal.length; kept += compacted.length;
    if (JSON.stringify(merged(compacted)) !== JSON.stringify(merged(journal))) {
      t.fail(`LANHA_SEED=${seed}: the merge of the compacted journal differs from the whole one's`);
      break;
    }
  }
  t.ok(kept < records / 4, `200 journals: ${records} records -> ${kept}, each merging to the same leases (first grant and last change times too)`);
});

t.test('a crash at each step of a compaction leaves the old journal or the new one, whole; appends go on after', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const journal = journalOf(7, 400);
  const compacted = compactRecords(journal);
  for (const cut of ['written', 'synced', 'renamed', 'dir-synced'] as DurableStep[]) {
    const path = join(dir, `j-${cut}`);
    writeFileSync(path, journalBytes('old', 1, []));
    const w = new JournalWriter(path);
    for (const r of journal) void w.append(r);
    const crash = w.replace(() => ({ journal: 'new', from: 1, records: compacted }), (step) => { if (step === cut) throw new Error(`cut after ${step}`); });
    await t.rejects(crash, { message: `cut after ${cut}` }, `cut after ${cut}`);
    // A restart reads the file as the crash left it.
    const read = readJournal(path)!;
    const expected = cut === 'written' || cut === 'synced' ? { journal: 'old', records: journal } : { journal: 'new', records: compacted };
    t.same({ journal: read.journal, records: read.records }, expected, `cut after ${cut}: the ${expected.journal} journal, whole (${read.records.length} records)`);
    t.same(merged(read.records), merged(journal), `cut after ${cut}: merging it gives the same leases`);
    const after = new JournalWriter(path);
    await after.append(rec(40));
    await after.replace(() => ({ journal: 'again', from: 1, records: compactRecords([...read.records, rec(40)]) }));
    await after.close();
    t.same(readJournal(path)?.records.at(-1), rec(40), `cut after ${cut}: appends and the next compaction go on (a stale .tmp is overwritten)`);
  }
  // A crash while the new file was being written: a torn .tmp beside the journal changes nothing.
  const path = join(dir, 'j-torn');
  writeFileSync(path, journalBytes('old', 1, journal));
  writeFileSync(`${path}.tmp`, journalBytes('new', 1, compacted).subarray(0, 100));
  t.same(readJournal(path)?.records, journal, 'a torn new file is not read: the old journal stands');
});
