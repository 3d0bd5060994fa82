import t from 'tap';
import { execFileSync } from 'node:child_process';
import { DNS_WORKER_NODE_FLAGS, dnsWorkerNodeFlagsFromEnv } from './memory.js';

t.test('LANHA_DNS_WORKER_NODE_FLAGS: unset or blank is the shipped set; V8 heap and GC flags replace it', async (t) => {
  t.same(dnsWorkerNodeFlagsFromEnv(undefined), DNS_WORKER_NODE_FLAGS);
  t.same(dnsWorkerNodeFlagsFromEnv('  '), DNS_WORKER_NODE_FLAGS);
  t.same(dnsWorkerNodeFlagsFromEnv(' --max-semi-space-size=8   --single-threaded-gc '), ['--max-semi-space-size=8', '--single-threaded-gc']);
  t.same(dnsWorkerNodeFlagsFromEnv('--semi-space-growth-factor=1.5 --no-optimize-for-size --no-lazy-feedback-allocation'),
    ['--semi-space-growth-factor=1.5', '--no-optimize-for-size', '--no-lazy-feedback-allocation']);
});

t.test('the DNS workers\' young generation grows to its 2 MiB semi-spaces (--optimize-for-size held it at 1 MiB: a scavenge twice as often in a miss flood)', async (t) => {
  // What survives a while (as a miss flood's flights and cache entries do) makes V8 grow the young
  // generation up to its cap; the size it reached is the new space's.
  const script = `const keep = new Array(50000); for (let i = 0; i < 200000; i++) keep[i % 50000] = { a: i, b: [i, i + 1], c: 'x' + i };
    process.stdout.write(String(require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));`;
  const size = Number(execFileSync(process.execPath, [...DNS_WORKER_NODE_FLAGS, '-e', script], { encoding: 'utf8' }));
  t.ok(size > 1 << 20, `new space ${size} B: past 1 MiB`);
  t.ok(size <= 4 << 20, `new space ${size} B: within 2 x 2 MiB`);
});

t.test('LANHA_DNS_WORKER_NODE_FLAGS: anything but a listed flag with a plain number is refused naming the token', async (t) => {
  for (const bad of ['--inspect', '--require=x', '--max-semi-space-size=8M', '--max-semi-space-size=', '-e', 'max-lazy',
    '--no-max-semi-space-size=4', '--max-semi-space-size=../x', '--expose-gc', '--optimise-for-size']) {
    t.throws(() => dnsWorkerNodeFlagsFromEnv(`--single-threaded-gc ${bad}`),
      { code: 'config-invalid', message: `LANHA_DNS_WORKER_NODE_FLAGS: ${JSON.stringify(bad)} is not one of the DNS worker's V8 flags` }, bad);
  }
});

t.test('processMemory answers while the process is out of file descriptors (EMFILE)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const memory = fileURLToPath(new URL('./memory.js', import.meta.url));
  // A child with a low descriptor limit opens /dev/null until it may not, then asks for its memory.
  const script = `import { closeSync, openSync } from 'node:fs';
const { processMemory } = await import(${JSON.stringify(memory)});
processMemory('child');
const held = [];
try { for (let i = 0; i < 10000; i++) held.push(openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
let direct = 'ok';
try { process.memoryUsage(); } catch (e) { direct = e.code; }
const memory = processMemory('child');
for (const fd of held) closeSync(fd);
console.log(JSON.stringify({ direct, memory }));`;
  // Without the test runner's NODE_OPTIONS: its exit hook writes a file and would print EMFILE noise.
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const out = execFileSync('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', env });
  const { direct, memory: m } = JSON.parse(out) as { direct: string; memory: { rssMiB: number; heapUsedMiB: number } };
  t.equal(direct, 'EMFILE', 'process.memoryUsage() itself fails there');
  t.ok(m.heapUsedMiB > 0 && m.rssMiB > 0, `processMemory still reports: ${JSON.stringify(m)}`);
});

t.test('processMemory says where the main thread\'s heap is: its spaces add up to the heap V8 holds', async (t) => {
  const { processMemory } = await import('./memory.js');
  const keep = Array.from({ length: 20000 }, (_, i) => ({ i, s: `x${i}` }));
  const m = processMemory('test');
  const s = m.heapSpacesMiB!;
  t.ok(s.new > 0 && s.old > 0 && s.code > 0, `spaces ${JSON.stringify(s)}`);
  // heapTotal is every space's committed size; the spaces' resident pages are at most that, and most of it.
  const sum = s.new + s.old + s.code + s.largeObject;
  t.ok(sum <= m.heapTotalMiB + 0.3 && sum >= m.heapTotalMiB * 0.5, `spaces sum ${sum.toFixed(1)} MiB against heapTotal ${m.heapTotalMiB} MiB`);
  t.equal(keep.length, 20000);
});
