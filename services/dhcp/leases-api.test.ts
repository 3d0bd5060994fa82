import t from 'tap';
import type { Lease } from '../../cluster/fsm.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { Clock } from '../../lib/clock.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { leaseRoutes, type LeaseRow } from './leases-api.js';
import { ITEMS_PER_SLICE } from '../../lib/slices.js';
import { loopTurns } from '../../test/support/loop-turns.js';

// GET /v1/leases (lanctl leases): rows in address order (numeric: 10.0.0.9 before 10.0.0.10), the
// default listing bound and declined leases only, a bound lease past its time shown as expired.

const nowMs = Date.UTC(2026, 11, 1);
function lease(ip: string, mac: string, state: Lease['state'], expiresInMs: number): Lease {
  return { ip: parseIpv4(ip)!, mac, subnet: '10.0.0.0/8', state, grantedAt: nowMs - 60_000, expiresAt: nowMs + expiresInMs, changedAt: nowMs - 60_000, index: 1, ackedBy: 'lan-a' };
}
const leases = [
  lease('10.0.0.10', '52:54:00:00:00:0a', 'bound', 3_600_000),
  lease('10.0.0.9', '52:54:00:00:00:09', 'bound', 3_600_000),
  lease('10.0.1.1', '52:54:00:00:01:01', 'released', 0),
  lease('9.255.255.255', '52:54:00:ff:ff:ff', 'declined', 600_000),
  lease('10.0.0.100', '52:54:00:00:00:64', 'bound', -1_000),
];
const state = { fsm: { leases: () => leases }, logTimeMs: () => nowMs } as unknown as StateLog;
const clock = { wallMs: () => nowMs, monotonicMs: () => 0 } as unknown as Clock;
const get = leaseRoutes(state, clock)['GET /v1/leases']!;

async function list(query: string): Promise<LeaseRow[]> {
  const answer = await get({ query: new URLSearchParams(query), body: undefined } as Parameters<typeof get>[0]);
  t.equal(answer.status, 200, `GET /v1/leases?${query}: 200`);
  return (answer.body as { leases: LeaseRow[] }).leases;
}

t.test('every lease with all=1, in numeric address order, a bound lease past its time as expired', async (t) => {
  const rows = await list('all=1');
  t.same(rows.map((r) => r.ip), ['9.255.255.255', '10.0.0.9', '10.0.0.10', '10.0.0.100', '10.0.1.1']);
  t.same(rows.map((r) => r.state), ['declined', 'bound', 'bound', 'expired', 'released']);
});

t.test('by default bound and declined only, still in address order', async (t) => {
  t.same((await list('')).map((r) => r.ip), ['9.255.255.255', '10.0.0.9', '10.0.0.10']);
});

t.test('--mac and --ip pick one; a bad one is a 400 naming it', async (t) => {
  t.same((await list('mac=52:54:00:00:00:09')).map((r) => r.ip), ['10.0.0.9']);
  t.same((await list('ip=10.0.0.10')).map((r) => r.mac), ['52:54:00:00:00:0a']);
  const bad = await get({ query: new URLSearchParams('ip=10.0.0.300'), body: undefined } as Parameters<typeof get>[0]);
  t.equal(bad.status, 400);
  t.match((bad.body as { error: string }).error, /10\.0\.0\.300 is not an IPv4 address/);
});

// `lanctl leases --all --json` with ~22,000 leases held the daemon's loop in one block: the copy, the
// sort and every row before the answer (DHCP on the same loop waited). Counted by a getter on each
// lease's MAC (read once per row made): at most ITEMS_PER_SLICE rows per turn of the loop.
t.test('22,000 leases: the rows are made a slice at a time, the loop turning between, in address order', async (t) => {
  let counter: ReturnType<typeof loopTurns> | undefined;
  const many: Lease[] = [];
  for (let i = 0; i < 22_000; i++) {
    const l = lease(`10.${(i * 7919) >> 16 & 255}.${(i * 7919) >> 8 & 255}.${(i * 7919) & 255}`, `52:54:00:${[16, 8, 0].map((s) => ((i >> s) & 255).toString(16).padStart(2, '0')).join(':')}`, i % 3 === 0 ? 'released' : 'bound', 3_600_000);
    const mac = l.mac;
    Object.defineProperty(l, 'mac', { get: () => { counter?.seen(); return mac; }, enumerable: true });
    many.push(l);
  }
  const route = leaseRoutes({ fsm: { leases: () => many }, logTimeMs: () => nowMs } as unknown as StateLog, clock)['GET /v1/leases']!;
  counter = loopTurns();
  const answer = await route({ query: new URLSearchParams('all=1'), body: undefined } as Parameters<typeof route>[0]);
  const { most, turns } = counter.stop();
  t.ok(most <= ITEMS_PER_SLICE, `the most rows made in one turn of the loop: ${most} of 22,000`);
  t.ok(turns >= 21, `the loop turned ${turns} times meanwhile`);
  const rows = (answer.body as { leases: LeaseRow[] }).leases;
  t.equal(rows.length, 22_000, 'every lease');
  t.ok(rows.every((r, i) => i === 0 || parseIpv4(rows[i - 1]!.ip)! < parseIpv4(r.ip)!), 'in numeric address order');
  const bound = await route({ query: new URLSearchParams(''), body: undefined } as Parameters<typeof route>[0]);
  t.equal((bound.body as { leases: LeaseRow[] }).leases.length, many.filter((l) => l.state === 'bound').length, 'the default listing: the bound ones');
});
