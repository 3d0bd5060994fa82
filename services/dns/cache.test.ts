import t from 'tap';
import { ForwardCache, cacheTtl } from './cache.js';
import { encodeName } from './name.js';
import { concat, RCODE, T, type DnsRecord } from './wire.js';

const a = (ttl: number): DnsRecord => ({ name: 'x.example', type: T.A, class: 1, ttl, rdata: Uint8Array.of(192, 0, 2, 1) });
const soa = (ttl: number, minimum: number): DnsRecord => ({
  name: 'example', type: T.SOA, class: 1, ttl,
  rdata: concat([encodeName('ns.example'), encodeName('admin.example'), new Uint8Array(16), Uint8Array.of(0, 0, minimum >> 8, minimum & 0xff)]),
});

t.test('TTLs: positive = smallest answer TTL, negative = min(SOA TTL, minimum), no SOA = not cached', async (t) => {
  t.equal(cacheTtl({ rcode: 0, answers: [a(300), a(60)], authority: [], additional: [] }), 60);
  t.equal(cacheTtl({ rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(3600, 120)], additional: [] }), 120);
  t.equal(cacheTtl({ rcode: RCODE.NOERROR, answers: [], authority: [soa(30, 120)], additional: [] }), 30, 'NODATA');
  t.equal(cacheTtl({ rcode: RCODE.NXDOMAIN, answers: [], authority: [], additional: [] }), 0);
  t.equal(cacheTtl({ rcode: RCODE.SERVFAIL, answers: [], authority: [], additional: [] }), 0);
});

t.test('served TTLs count down, entries expire, capacity evicts the least recently used', async (t) => {
  const c = new ForwardCache(2);
  c.put('a', { rcode: 0, answers: [a(10)], authority: [], additional: [] }, 0);
  t.equal(c.get('a', 3_500)?.answers[0]?.ttl, 7, 'TTL counts down');
  t.equal(c.get('a', 10_000), null, 'expired');
  c.put('a', { rcode: 0, answers: [a(100)], authority: [], additional: [] }, 0);
  c.put('b', { rcode: 0, answers: [a(100)], authority: [], additional: [] }, 0);
  c.get('a', 1);
  c.put('c', { rcode: 0, answers: [a(100)], authority: [], additional: [] }, 0);
  t.ok(c.get('a', 2) !== null, 'recently used kept');
  t.equal(c.get('b', 2), null, 'least recently used evicted');
  t.equal(c.size, 2);
});
