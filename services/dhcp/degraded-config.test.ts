// dhcp.degraded in the config: off by default, validated with key path and value, needs two LAN
// members on the embedded Raft log, and what `config check` says of it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../config/index.js';
import { degradedLine, ownershipOf } from './degraded-config.js';
import { MCLT_DEFAULT_MS } from '../../cluster/degraded.js';

const site = readFileSync(new URL('../../../examples/site.yaml', import.meta.url), 'utf8');
const withDegraded = (block: string): string => site.replace(/^dhcp:\n/m, `dhcp:\n  degraded: ${block}\n`);

t.test('off by default: nothing changes, config check says so', (t) => {
  const c = parseConfig(site);
  t.same(c.dhcp?.degraded, { enabled: false, mclt: MCLT_DEFAULT_MS });
  t.equal(ownershipOf(c), null);
  t.match(degradedLine(c), /dhcp degraded: off/);
  t.end();
});

t.test('on: the halves and the MCLT', (t) => {
  const c = parseConfig(withDegraded('{ enabled: true, mclt: 30m }'));
  t.equal(c.dhcp?.degraded.mclt, 1_800_000);
  t.equal(ownershipOf(c)?.ownerOf(0x0a140064), 'lan-a', '10.20.0.100: the first half');
  t.equal(ownershipOf(c)?.ownerOf(0x0a1400c7), 'lan-b', '10.20.0.199: the second half');
  t.match(degradedLine(c), /on, MCLT 1800 s; pool halves: lan-a 10\.20\.0\.100-10\.20\.0\.149, 10\.30\.0\.50-10\.30\.0\.100; lan-b 10\.20\.0\.150-10\.20\.0\.199, 10\.30\.0\.101-10\.30\.0\.150/);
  t.end();
});

t.test('bad values are named by key path and value', (t) => {
  t.throws(() => parseConfig(withDegraded('{ enabled: yes please }')), /dhcp\.degraded\.enabled: .*is not true or false/);
  t.throws(() => parseConfig(withDegraded('{ enabled: true, mclt: 10s }')), /dhcp\.degraded\.mclt: .*is not an MCLT between 1m and 7d/);
  t.throws(() => parseConfig(withDegraded('{ enabled: true, mlct: 1h }')), /dhcp\.degraded.*mlct/);
  const single = withDegraded('{ enabled: true }').replace(/    - \{ name: lan-b.*\n/, '');
  t.throws(() => parseConfig(single), /dhcp\.degraded\.enabled: .*two LAN members .*1 such members/);
  t.end();
});
