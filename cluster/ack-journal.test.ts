import t from 'tap';
import { execFileSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckJournal, ackJournalAppender } from './ack-journal.js';
import { createLogger } from '../lib/log.js';
import type { AckRecord } from './ack-audit.js';
import { haveTools } from '../test/support/tools.js';

// The ACK journal survives a restart: what was appended is read back in order, a torn last line
// and garbage are skipped without stopping the daemon, and the files stay bounded (at the ring's
// worth of lines the file is renamed to acks.jsonl.1 and a new one started: no append rewrites the ring).

const ack = (i: number): AckRecord => ({ index: i, term: i % 2 === 0 ? 3 : null, ip: 0x0a000000 + i, mac: `52:54:00:00:00:${(i % 256).toString(16).padStart(2, '0')}`, at: 1000 + i, sentAt: 2000 + i });

t.test('appends are read back after a restart; a torn line and garbage are skipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'acks.jsonl');
  const first = AckJournal.open(path, 8);
  t.same(first.records, [], 'no file: an empty journal');
  for (let i = 1; i <= 3; i++) first.append(ack(i));
  first.close();
  appendFileSync(path, 'not json\n{"i":-1,"t":1,"ip":1,"m":"x","a":1,"s":1}\n{"i":4,"t":3,"ip":');
  const second = AckJournal.open(path, 8);
  t.same(second.records, [ack(1), ack(2), ack(3)], 'the three ACKs, nothing else');
  second.append(ack(5));
  second.close();
  t.same(AckJournal.open(path, 8).records, [ack(1), ack(2), ack(3), ack(5)], 'the torn line did not swallow the next record');
});

t.test('at the ring\'s worth of lines the file is renamed, never rewritten; only the newest are read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'acks.jsonl');
  const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []);
  const j = AckJournal.open(path, 4);
  let rotations = 0;
  for (let i = 1; i <= 20; i++) {
    const before = statSync(path);
    j.append(ack(i));
    const now = lines(path);
    if (now.length === 0) {
      // The rotation: the file the appends went to is now acks.jsonl.1, the same file (renamed),
      // holding the ring; nothing was written again. (It was rewritten: the ring serialized into a
      // new file, every 4,096 ACKs on the ACK's path.)
      rotations++;
      t.equal(statSync(`${path}.1`).ino, before.ino, `after ${i}: acks.jsonl.1 is the file appended to`);
      t.equal(lines(`${path}.1`).length, 4, `after ${i}: it holds the ring`);
    } else {
      t.equal(statSync(path).ino, before.ino, `after ${i}: appended in place`);
      t.equal(statSync(path).size, before.size + now[now.length - 1]!.length + 1, `after ${i}: one line written`);
    }
    t.same(AckJournal.open(path, 4).records.map((r) => r.index), Array.from({ length: Math.min(4, i) }, (_, k) => i - Math.min(4, i) + 1 + k), `after ${i}: the newest four read back`);
  }
  t.equal(rotations, 5, 'one rotation per four ACKs');
  j.close();
  t.same(AckJournal.open(path, 4).records, [ack(17), ack(18), ack(19), ack(20)]);
  writeFileSync(path, '');
  rmSync(`${path}.1`);
  t.same(AckJournal.open(path, 4).records, [], 'an empty file');
});

t.test('killed between the rotation\'s renames: acks.jsonl.1 is read, appends go on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'acks.jsonl');
  const j = AckJournal.open(path, 3);
  for (let i = 1; i <= 3; i++) j.append(ack(i));
  j.close();
  // As a kill leaves it after the first rename: no acks.jsonl, the new (empty) file under .next.
  rmSync(path);
  writeFileSync(`${path}.next`, '');
  const k = AckJournal.open(path, 3);
  t.same(k.records, [ack(1), ack(2), ack(3)], 'the ring from acks.jsonl.1');
  for (let i = 4; i <= 7; i++) k.append(ack(i));
  k.close();
  t.same(AckJournal.open(path, 3).records, [ack(5), ack(6), ack(7)]);
});

t.test('a file of an older build (up to twice the ring, no acks.jsonl.1) reads the same and rotates at the next append', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'acks.jsonl');
  writeFileSync(path, [1, 2, 3, 4, 5, 6, 7].map((i) => `${JSON.stringify({ i, t: ack(i).term, ip: ack(i).ip, m: ack(i).mac, a: ack(i).at, s: ack(i).sentAt })}\n`).join(''));
  const j = AckJournal.open(path, 4);
  t.same(j.records, [ack(4), ack(5), ack(6), ack(7)]);
  j.append(ack(8));
  t.equal(readFileSync(path, 'utf8'), '', 'rotated');
  j.append(ack(9));
  j.close();
  t.same(AckJournal.open(path, 4).records, [ack(6), ack(7), ack(8), ack(9)]);
});

t.test('an append after close throws and never writes into the file that reused the descriptor', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const j = AckJournal.open(join(dir, 'acks.jsonl'), 8);
  j.append(ack(1));
  j.close();
  j.close(); // idempotent
  // The next open takes the lowest free descriptor: the journal's old one.
  const other = join(dir, 'other');
  const fd = openSync(other, 'a');
  t.teardown(() => closeSync(fd));
  t.throws(() => j.append(ack(2)), /ACK journal .* is closed/);
  t.equal(readFileSync(other, 'utf8'), '', 'nothing written into the other file');
  t.same(AckJournal.open(join(dir, 'acks.jsonl'), 8).records, [ack(1)]);
});

t.test('the daemon\'s appender: out of file descriptors for a rotation is said once and tried again, not the journal given up', async (t) => {
  if (process.platform !== 'linux' || !haveTools(t, ['prlimit'], 'ACK journal descriptor test')) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ack-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'acks.jsonl');
  const j = AckJournal.open(path, 2);
  const logs: Array<Record<string, unknown>> = [];
  const append = ackJournalAppender(j, createLogger({ level: 'info', destination: { write: (s: string) => { logs.push(JSON.parse(s) as Record<string, unknown>); } } }));
  const add = (i: number): void => { append(ack(i)); };
  for (let i = 1; i <= 3; i++) add(i); // 1, 2 rotated to acks.jsonl.1; the next makes 2 lines: a rotation
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  // Every descriptor this process may have is taken: what needs a new one fails with EMFILE.
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${readdirSync('/proc/self/fd').length + 64}:${hard}`]);
  const held: number[] = [];
  try {
    try { for (let n = 0; n < 10_000; n++) held.push(openSync('/dev/null', 'r')); } catch (error) { if ((error as NodeJS.ErrnoException).code !== 'EMFILE') throw error; }
    add(4);
    add(5);
  } finally {
    for (const fd of held) closeSync(fd);
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`]);
  }
  t.equal(logs.filter((l) => l['event'] === 'dhcp.ack.journal_fd_exhausted').length, 1, 'said once for two refused rotations');
  t.same(logs.filter((l) => l['event'] === 'dhcp.ack.journal_failed'), [], 'not given up (it was: journal_failed, and no ACK was written after it)');
  t.same(AckJournal.open(path, 8).records, [ack(1), ack(2), ack(3), ack(4), ack(5)], 'the ACKs of the shortage are in the file');
  add(6); // descriptors again: this append rotates
  add(7);
  j.close();
  t.same(AckJournal.open(path, 2).records, [ack(6), ack(7)], 'appends and the rotation go on');
});
