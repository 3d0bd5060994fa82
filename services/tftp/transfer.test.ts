import t from 'tap';
import fc from 'fast-check';
import { AckOutcome, negotiate, Transfer, type TransferEffect, type TransferParams } from './transfer.js';

const base: TransferParams = { size: 0, blksize: 512, windowsize: 1, timeoutMs: 1000, retries: 5, idleTimeoutMs: 60_000, oack: false };
const blocks = (effects: TransferEffect[]): number[] => effects.flatMap((e) => (e.kind === 'data' ? [e.block] : []));
const kinds = (effects: TransferEffect[]): string[] => effects.map((e) => e.kind);

t.test('negotiation as a sentence says', async (t) => {
  const limits = { blksizeMax: 1468, windowsizeMax: 16, timeoutMs: 1000 };
  const n = (opts: Array<[string, string]>, size = 1000) => negotiate(opts.map(([name, value]) => ({ name, value })), size, limits);
  t.same(n([]), { blksize: 512, windowsize: 1, timeoutMs: 1000, oack: [] }, 'no options: plain RFC 1350, no OACK');
  t.same(n([['blksize', '8192']]).oack, [{ name: 'blksize', value: '1468' }], 'blksize over the cap answers the cap');
  t.same(n([['blksize', '7']]).oack, [], 'blksize under 8 is ignored');
  t.same(n([['blksize', '65465']]).oack, [], 'blksize over 65464 is ignored');
  t.same(n([['tsize', '0']], 33554944).oack, [{ name: 'tsize', value: '33554944' }], 'tsize answers the file size');
  t.same(n([['timeout', '0']]).oack, [], 'timeout 0 is ignored');
  t.equal(n([['timeout', '5']]).timeoutMs, 1000, 'a long client timeout is acknowledged, retransmission keeps the server timeout');
  t.equal(negotiate([{ name: 'timeout', value: '2' }], 1, { ...limits, timeoutMs: 5000 }).timeoutMs, 2000, 'a shorter client timeout is used');
  t.same(n([['timeout', '5']]).oack, [{ name: 'timeout', value: '5' }], 'and acknowledged as sent');
  t.same(n([['windowsize', '64']]).oack, [{ name: 'windowsize', value: '16' }], 'windowsize capped');
  t.same(n([['foo', '1'], ['blksize', 'x12']]).oack, [], 'unknown options and non-numbers are left out');
  t.same(n([['blksize', '1024'], ['blksize', '600']]).oack, [{ name: 'blksize', value: '1024' }], 'a repeated option: the first counts');
});

t.test('plain transfer, exact multiple of blksize ends with an empty block', async (t) => {
  const x = new Transfer({ ...base, size: 1024 });
  t.equal(x.lastBlock, 3);
  t.same(blocks(x.start(0)), [1]);
  t.same(blocks(x.step({ kind: 'ack', block: 1 }, 1)), [2]);
  const last = x.step({ kind: 'ack', block: 2 }, 2);
  t.same(last.find((e) => e.kind === 'data'), { kind: 'data', block: 3, offset: 1024, length: 0, retransmit: false }, 'block 3 is empty');
  t.same(kinds(x.step({ kind: 'ack', block: 3 }, 3)), ['done']);
  t.same(x.step({ kind: 'ack', block: 3 }, 4), [], 'nothing after done');
});

t.test('an empty file is one empty block', async (t) => {
  const x = new Transfer({ ...base, size: 0 });
  t.same(x.start(0).find((e) => e.kind === 'data'), { kind: 'data', block: 1, offset: 0, length: 0, retransmit: false });
  t.same(kinds(x.step({ kind: 'ack', block: 1 }, 1)), ['done']);
});

t.test('OACK first, then data on ACK 0; ERROR 8 ends it', async (t) => {
  const x = new Transfer({ ...base, size: 100, oack: true });
  t.same(kinds(x.start(0)), ['oack', 'timer']);
  t.same(x.step({ kind: 'ack', block: 5 }, 1), [], 'a stray ACK before ACK 0 is ignored');
  t.same(kinds(x.step({ kind: 'timeout' }, 1000)), ['oack', 'timer'], 'OACK retransmitted on timeout');
  t.same(blocks(x.step({ kind: 'ack', block: 0 }, 1100)), [1]);
  const y = new Transfer({ ...base, size: 100, oack: true });
  y.start(0);
  t.same(y.step({ kind: 'error', code: 8 }, 1), [{ kind: 'abort', reason: 'peer-error' }]);
});

t.test('duplicate ACKs never resend with windowsize 1 (Sorcerer\'s Apprentice)', async (t) => {
  // 65 blocks, every ACK arrives twice: exactly 65 DATA packets (the npm tftp package sent 4,096).
  const x = new Transfer({ ...base, size: 64 * 512 + 100 });
  let sent = blocks(x.start(0)).length;
  for (let b = 1; b <= x.lastBlock && !x.finished; b++) {
    sent += blocks(x.step({ kind: 'ack', block: b }, b)).length;
    sent += blocks(x.step({ kind: 'ack', block: b }, b)).length;
  }
  t.equal(x.phase, 'done');
  t.equal(sent, 65);
  t.equal(x.retransmits, 0);
});

t.test('a window restarts at n+1 on an ACK for n, and at most once for a no-progress ACK', async (t) => {
  const x = new Transfer({ ...base, size: 512 * 20, windowsize: 4 });
  t.same(blocks(x.start(0)), [1, 2, 3, 4]);
  t.same(blocks(x.step({ kind: 'ack', block: 2 }, 1)), [3, 4, 5, 6], 'block 3 lost: ACK 2 restarts at 3');
  t.same(blocks(x.step({ kind: 'ack', block: 2 }, 2)), [3, 4, 5, 6], 'a second ACK 2 (first of window lost again) restarts once');
  t.same(blocks(x.step({ kind: 'ack', block: 2 }, 3)), [], 'the third one is ignored');
  t.same(blocks(x.step({ kind: 'ack', block: 6 }, 4)), [7, 8, 9, 10]);
  t.same(blocks(x.step({ kind: 'ack', block: 1 }, 5)), [], 'an old ACK is ignored');
  t.same(blocks(x.step({ kind: 'timeout' }, 1005)), [7, 8, 9, 10], 'timeout resends the window');
});

t.test('timeouts back off and give up after the retry limit', async (t) => {
  const x = new Transfer({ ...base, size: 5000, retries: 3 });
  x.start(0);
  const timers: number[] = [];
  let now = 0;
  for (let i = 0; i < 3; i++) {
    const effects = x.step({ kind: 'timeout' }, (now += 1000));
    t.same(blocks(effects), [1]);
    timers.push((effects.find((e) => e.kind === 'timer') as { ms: number }).ms);
  }
  t.same(timers, [2000, 4000, 8000], 'doubling back-off, capped at 8x');
  t.same(x.step({ kind: 'timeout' }, (now += 8000)), [{ kind: 'abort', reason: 'timeout' }]);
  const idle = new Transfer({ ...base, size: 5000, retries: 50, idleTimeoutMs: 3000 });
  idle.start(0);
  idle.step({ kind: 'timeout' }, 1000);
  t.same(idle.step({ kind: 'timeout' }, 3000), [{ kind: 'abort', reason: 'idle' }], 'no progress for idleTimeout ends it');
});

t.test('block numbers roll over past 65535 (33 MiB at 512)', async (t) => {
  const size = 33 * 1048576;
  const x = new Transfer({ ...base, size, windowsize: 8 });
  t.equal(x.lastBlock, 67585);
  let sent = blocks(x.start(0));
  let acked = 0;
  while (!x.finished) {
    acked = sent[sent.length - 1]!;
    const effects = x.step({ kind: 'ack', block: acked & 0xffff }, 0);
    sent = blocks(effects);
    if (effects.some((e) => e.kind === 'done')) break;
  }
  t.equal(x.phase, 'done');
  t.equal(acked, 67585);
  t.equal(x.ackedBytes, size);
  t.equal(x.retransmits, 0);
});

t.test('properties over random ACK / duplicate / timeout sequences', async (t) => {
  const event = fc.oneof(
    fc.record({ kind: fc.constant('ack-latest' as const) }),
    fc.record({ kind: fc.constant('ack-partial' as const), back: fc.integer({ min: 0, max: 20 }) }),
    fc.record({ kind: fc.constant('ack-random' as const), block: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ kind: fc.constant('dup' as const) }),
    fc.record({ kind: fc.constant('timeout' as const) }),
  );
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 40_000 }), fc.constantFrom(8, 512, 1468), fc.integer({ min: 1, max: 16 }), fc.boolean(), fc.array(event, { maxLength: 300 }),
    (size, blksize, windowsize, oack, events) => {
      const x = new Transfer({ ...base, size, blksize, windowsize, oack, retries: 5 });
      let now = 0;
      let lastAck = 0;
      let highest = 0;
      const check = (effects: TransferEffect[], progressed: boolean, kind: string): void => {
        const data = blocks(effects);
        if (x.inFlight > windowsize) throw new Error(`in flight ${x.inFlight} > window ${windowsize}`);
        if (data.length > windowsize) throw new Error(`${data.length} blocks for one event`);
        if (!progressed && kind !== 'timeout' && data.length > 0 && windowsize === 1) throw new Error('resend on a no-progress ACK with windowsize 1');
        for (const b of data) { if (b > x.lastBlock || b < 1) throw new Error(`block ${b} outside 1..${x.lastBlock}`); highest = Math.max(highest, b); }
        if (x.finished && effects.some((e) => e.kind === 'data' || e.kind === 'oack')) throw new Error('sent after finishing');
      };
      check(x.start(now), true, 'start');
      let restartsWithoutProgress = 0;
      for (const e of events) {
        if (x.finished) { if (x.step({ kind: 'timeout' }, now).length !== 0) throw new Error('effects after finish'); break; }
        now += 10;
        const before = x.ackedBlocks;
        const phaseBefore = x.phase;
        let effects: TransferEffect[];
        let kind = 'ack';
        if (e.kind === 'timeout') { kind = 'timeout'; now += 1000; effects = x.step({ kind: 'timeout' }, now); } else {
          const block = x.phase === 'oack' ? 0
            : e.kind === 'ack-latest' ? highest
            : e.kind === 'ack-partial' ? Math.max(0, highest - e.back)
            : e.kind === 'dup' ? lastAck
            : e.block;
          lastAck = block;
          effects = x.step({ kind: 'ack', block: block & 0xffff }, now);
        }
        const progressed = x.ackedBlocks > before || x.phase !== phaseBefore;
        if (!progressed && kind === 'ack' && blocks(effects).length > 0) restartsWithoutProgress++;
        if (progressed) restartsWithoutProgress = 0;
        if (restartsWithoutProgress > 1) throw new Error('more than one window restart without progress: a resend storm');
        check(effects, progressed, kind);
      }
      // Drive to the end with a perfect client: it must complete, or abort cleanly on retries.
      for (let guard = 0; !x.finished && guard < 100_000; guard++) {
        now += 1;
        const effects = x.phase === 'oack' ? x.step({ kind: 'ack', block: 0 }, now) : x.step({ kind: 'ack', block: highest & 0xffff }, now);
        check(effects, true, 'ack');
        if (blocks(effects).length === 0 && !x.finished) check(x.step({ kind: 'timeout' }, (now += 1000)), false, 'timeout');
      }
      if (x.phase !== 'done' && x.phase !== 'aborted') throw new Error(`ended in ${x.phase}`);
      if (x.phase === 'done' && x.ackedBytes !== size) throw new Error('done without every byte acknowledged');
    },
  ), { numRuns: 300, seed: Number(process.env['LANHA_SEED'] ?? 5) });
  t.pass('invariants held');
});

t.test('ack() (the shell\'s path without allocation) decides exactly what step() does', async (t) => {
  // What the engine builds from ack(): DATA for [sendFrom, sendTo), then the timer.
  const asEffects = (x: Transfer, outcome: AckOutcome): TransferEffect[] => {
    if (outcome === AckOutcome.done) return [{ kind: 'done' }];
    if (outcome === AckOutcome.ignored) return [];
    const out: TransferEffect[] = [];
    const { blksize, size } = x.params;
    for (let block = x.sendFrom; block < x.sendTo; block++) {
      const offset = (block - 1) * blksize;
      out.push({ kind: 'data', block, offset, length: Math.max(0, Math.min(blksize, size - offset)), retransmit: block < x.sendFrom + x.resent });
    }
    out.push({ kind: 'timer', ms: x.timerMs });
    return out;
  };
  const event = fc.oneof(
    fc.record({ kind: fc.constant('ack' as const), back: fc.integer({ min: -2, max: 20 }) }),
    fc.record({ kind: fc.constant('ack-random' as const), block: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ kind: fc.constant('timeout' as const) }),
  );
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 200_000 }), fc.constantFrom(8, 512, 1468), fc.integer({ min: 1, max: 16 }), fc.boolean(), fc.array(event, { maxLength: 400 }),
    (size, blksize, windowsize, oack, events) => {
      const params = { ...base, size, blksize, windowsize, oack, retries: 5 };
      const a = new Transfer(params);
      const b = new Transfer(params);
      let now = 0;
      let highest = 0;
      const seen = (effects: TransferEffect[]): void => { for (const e of effects) if (e.kind === 'data') highest = Math.max(highest, e.block); };
      const same = (x: TransferEffect[], y: TransferEffect[], what: string): void => {
        if (JSON.stringify(x) !== JSON.stringify(y)) throw new Error(`${what}: step ${JSON.stringify(x)} vs ack ${JSON.stringify(y)}`);
      };
      const first = a.start(now);
      same(first, b.start(now), 'start');
      seen(first);
      for (const e of events) {
        now += 7;
        if (e.kind === 'timeout') {
          now += 1000;
          const x = a.step({ kind: 'timeout' }, now);
          same(x, b.step({ kind: 'timeout' }, now), 'timeout');
          seen(x);
          continue;
        }
        const block = (a.phase === 'oack' ? 0 : e.kind === 'ack' ? Math.max(0, highest - e.back) : e.block) & 0xffff;
        const x = a.step({ kind: 'ack', block }, now);
        same(x, asEffects(b, b.ack(block, now)), `ack ${block}`);
        seen(x);
      }
      if (a.retransmits !== b.retransmits || a.sentBlocks !== b.sentBlocks || a.ignoredAcks !== b.ignoredAcks || a.phase !== b.phase || a.ackedBytes !== b.ackedBytes) {
        throw new Error('figures differ');
      }
    },
  ), { numRuns: 300, seed: Number(process.env['LANHA_SEED'] ?? 7) });
  t.pass('same decisions, same figures');
});

t.test('stalled: no ACK progress for two retransmit intervals (a retransmission went unanswered)', async (t) => {
  const x = new Transfer({ ...base, size: 10 * 512 });
  t.equal(x.stalled(0), false, 'not started: not stalled');
  x.start(0);
  t.equal(x.stalled(1999), false, 'first retransmit interval plus most of the next: still live');
  t.same(blocks(x.step({ kind: 'timeout' }, 1000)), [1], 'the retransmission after one interval');
  t.equal(x.stalled(2000), true, 'the retransmission not answered within one more interval: stalled');
  t.equal(x.idleMs(2500), 2500);
  x.step({ kind: 'ack', block: 1 }, 2600);
  t.equal(x.stalled(2600), false, 'an ACK that moves forward makes it live again');
  t.equal(x.stalled(4599), false);
  t.equal(x.stalled(4600), true);
  x.step({ kind: 'cancel' }, 4700);
  t.equal(x.stalled(9000), false, 'a finished transfer is not stalled, it is over');
  const y = new Transfer({ ...base, size: 100, timeoutMs: 300 });
  y.start(0);
  t.equal(y.stallAfterMs, 600, 'the interval is the transfer\'s own retransmit timeout');
});

t.test('confirmed: only once the client acknowledged the OACK or a block, never by retransmissions or stray ACKs', async (t) => {
  const plain = new Transfer({ ...base, size: 2000 });
  plain.start(0);
  plain.step({ kind: 'timeout' }, 1000);
  plain.ack(7, 1001); // a block never sent
  plain.ack(0, 1002); // below the first block
  t.equal(plain.confirmed, false, 'DATA 1 sent twice, stray ACKs: not confirmed');
  plain.ack(1, 1003);
  t.equal(plain.confirmed, true, 'ACK 1: confirmed');
  const withOack = new Transfer({ ...base, size: 2000, oack: true });
  withOack.start(0);
  withOack.ack(1, 1); // not the OACK's
  t.equal(withOack.confirmed, false, 'an ACK other than 0 to the OACK: not confirmed');
  withOack.step({ kind: 'ack', block: 0 }, 2);
  t.equal(withOack.confirmed, true, 'ACK 0 to the OACK: confirmed');
});

t.test('unconfirmedRetries: a transfer nobody acknowledged gives up sooner, one acknowledged keeps every retry', async (t) => {
  const params = { ...base, size: 5000, retries: 5, unconfirmedRetries: 2 };
  const silent = new Transfer(params);
  silent.start(0);
  const ends: string[] = [];
  for (let i = 0, now = 0; i < 10 && !silent.finished; i++) {
    now += silent.timerMs;
    ends.push(...kinds(silent.step({ kind: 'timeout' }, now)));
  }
  t.same(ends.filter((k) => k === 'data').length, 2, 'DATA 1 sent twice more');
  t.same(ends.at(-1), 'abort', 'then given up');
  const oack = new Transfer({ ...params, oack: true });
  oack.start(0);
  const oackEffects: TransferEffect[] = [];
  for (let i = 0, now = 0; i < 10 && !oack.finished; i++) { now += oack.timerMs; oackEffects.push(...oack.step({ kind: 'timeout' }, now)); }
  t.same(oackEffects.filter((e) => e.kind === 'abort'), [{ kind: 'abort', reason: 'unconfirmed' }], 'an unanswered OACK too, with reason unconfirmed');
  t.equal(oackEffects.filter((e) => e.kind === 'oack').length, 2, 'after two retransmissions');
  const answered = new Transfer(params);
  answered.start(0);
  answered.step({ kind: 'ack', block: 1 }, 1);
  const later: TransferEffect[] = [];
  for (let i = 0, now = 1; i < 20 && !answered.finished; i++) { now += answered.timerMs; later.push(...answered.step({ kind: 'timeout' }, now)); }
  t.equal(later.filter((e) => e.kind === 'data').length, 5, 'an acknowledged transfer retransmits `retries` times');
  t.same(later.filter((e) => e.kind === 'abort'), [{ kind: 'abort', reason: 'timeout' }], 'and ends on timeout');
});
