import t from 'tap';
import { DNS_WORKER_NODE_FLAGS, dnsWorkerNodeFlagsFromEnv } from './memory.js';

t.test('LANHA_DNS_WORKER_NODE_FLAGS: unset or blank is the shipped set; V8 heap and GC flags replace it', async (t) => {
  t.same(dnsWorkerNodeFlagsFromEnv(undefined), DNS_WORKER_NODE_FLAGS);
  t.same(dnsWorkerNodeFlagsFromEnv('  '), DNS_WORKER_NODE_FLAGS);
  t.same(dnsWorkerNodeFlagsFromEnv(' --max-semi-space-size=8   --single-threaded-gc '), ['--max-semi-space-size=8', '--single-threaded-gc']);
  t.same(dnsWorkerNodeFlagsFromEnv('--semi-space-growth-factor=1.5 --no-optimize-for-size --no-lazy-feedback-allocation'),
    ['--semi-space-growth-factor=1.5', '--no-optimize-for-size', '--no-lazy-feedback-allocation']);
});

t.test('LANHA_DNS_WORKER_NODE_FLAGS: anything but a listed flag with a plain number is refused naming the token', async (t) => {
  for (const bad of ['--inspect', '--require=x', '--max-semi-space-size=8M', '--max-semi-space-size=', '-e', 'max-lazy',
    '--no-max-semi-space-size=4', '--max-semi-space-size=../x', '--expose-gc', '--optimise-for-size']) {
    t.throws(() => dnsWorkerNodeFlagsFromEnv(`--single-threaded-gc ${bad}`),
      { code: 'config-invalid', message: `LANHA_DNS_WORKER_NODE_FLAGS: ${JSON.stringify(bad)} is not one of the DNS worker's V8 flags` }, bad);
  }
});
