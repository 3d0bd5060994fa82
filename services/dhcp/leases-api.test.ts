import t from 'tap';
import type { Lease } from '../../cluster/fsm.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { Clock } from '../../lib/clock.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { leaseRoutes, type LeaseRow } from './leases-api.js';

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
