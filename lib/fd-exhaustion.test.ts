// Proves a descriptor shortage is recognised however it is reported (errno code, or only the
// message of a worker thread's init failure), counted on every refusal, said at most once per
// window with the refusals since the last line, and its end said once, only after a quiet second.
import t from 'tap';
import { createLogger } from './log.js';
import { FdShortage, RECOVERED_QUIET_MS, fdShortageCode, isFdExhaustion } from './fd-exhaustion.js';

function capture(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  return { log, lines };
}

t.test('recognised by code or by message only', async (t) => {
  t.equal(fdShortageCode(Object.assign(new Error('open'), { code: 'EMFILE' })), 'EMFILE');
  t.equal(fdShortageCode(Object.assign(new Error('bind'), { code: 'ENFILE' })), 'ENFILE');
  t.equal(fdShortageCode(Object.assign(new Error('Worker initialization failure: EMFILE'), { code: 'ERR_WORKER_INIT_FAILED' })), 'EMFILE');
  t.equal(fdShortageCode({ code: 'ENOENT', message: 'no such file' }), null);
  t.notOk(isFdExhaustion('EMFILE'), 'a bare string is no error');
  t.notOk(isFdExhaustion(null));
});

t.test('counted every time, said once per window with the count since, the end said after a quiet second', async (t) => {
  const { log, lines } = capture();
  let now = 0;
  const counts = new Map<string, number>();
  const fd = new FdShortage({ log, prefix: 'x', count: (n) => counts.set(n, (counts.get(n) ?? 0) + 1), nowMs: () => now, advice: 'raise it', windowMs: 10_000 });
  const emfile = { code: 'EMFILE' };
  for (let i = 0; i < 50; i++) { fd.refused(i % 2 === 0 ? 'file' : 'socket', emfile); now += 100; }
  t.same(Object.fromEntries(counts), { 'x.fd_exhausted.file': 25, 'x.fd_exhausted.socket': 25 });
  let said = lines.filter((l) => l['event'] === 'x.fd_exhausted');
  t.equal(said.length, 1, 'one line in the first 5 s');
  t.match(said[0], { what: 'file', code: 'EMFILE', refused: 1, msg: /out of file descriptors.*raise it/ });
  t.ok(fd.short);
  fd.recovered(); // 100 ms after the last refusal: at the limit, not over
  now += 5_000;
  fd.refused('file', emfile); // 10.0 s after the first line
  said = lines.filter((l) => l['event'] === 'x.fd_exhausted');
  t.equal(said.length, 2, 'the next line after the window');
  t.match(said[1], { refused: 50 }, 'with every refusal since the last line');
  now += RECOVERED_QUIET_MS;
  fd.recovered();
  t.match(lines.filter((l) => l['event'] === 'x.fd_recovered'), [{ refused: 51, ms: 10_000 }], 'the end, once, with the total');
  fd.recovered();
  t.equal(lines.filter((l) => l['event'] === 'x.fd_recovered').length, 1, 'said once');
  t.notOk(fd.short);
});

t.test('a success inside the quiet second is looked at again when it has passed', async (t) => {
  const { log, lines } = capture();
  const fd = new FdShortage({ log, prefix: 'x', count: () => undefined, nowMs: () => performance.now(), advice: 'a' });
  fd.refused('thread', { code: 'EMFILE' });
  fd.recovered();
  t.equal(lines.filter((l) => l['event'] === 'x.fd_recovered').length, 0, 'not at once');
  await new Promise((r) => setTimeout(r, RECOVERED_QUIET_MS + 100));
  t.equal(lines.filter((l) => l['event'] === 'x.fd_recovered').length, 1, 'said once the second has passed with no refusal');
});
