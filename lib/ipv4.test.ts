import t from 'tap';
import fc from 'fast-check';
import { cidrContains, formatIpv4, parseCidr, parseIpv4, parseIpv4Range, reverseName, broadcastOf } from './ipv4.js';
import { parseMac, isRaspberryPi } from './mac.js';

t.test('IPv4 text round-trips', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-4', 'a.b.c.d', ' 1.2.3.4']) t.equal(parseIpv4(bad), null, `"${bad}" refused`);
});

t.test('CIDR, ranges and reverse names', async (t) => {
  const c = parseCidr('10.1.2.3/24')!;
  t.equal(formatIpv4(c.network), '10.1.2.0');
  t.ok(cidrContains(c, parseIpv4('10.1.2.200')!));
  t.notOk(cidrContains(c, parseIpv4('10.1.3.1')!));
  t.equal(formatIpv4(broadcastOf(c)), '10.1.2.255');
  t.same(parseCidr('0.0.0.0/0'), { network: 0, prefixLength: 0 });
  t.equal(parseCidr('10.0.0.0/33'), null);
  t.equal(parseIpv4Range('10.0.0.9-10.0.0.1'), null, 'first > last refused');
  t.equal(reverseName(parseIpv4('10.1.2.3')!), '3.2.1.10.in-addr.arpa');
});

t.test('MAC parsing', async (t) => {
  t.equal(parseMac('B8-27-EB-01-02-03'), 'b8:27:eb:01:02:03');
  t.equal(parseMac('b827eb010203'), 'b8:27:eb:01:02:03');
  t.equal(parseMac('b8:27-eb:01:02:03'), null, 'mixed separators refused');
  t.equal(parseMac('B827.EB01.0203'), 'b8:27:eb:01:02:03', 'the form switches print MAC tables in');
  for (const bad of ['b827.eb01.020', 'b827.eb01.0203.', 'b8.27.eb.01.02.03', 'b827eb.010203', 'b827:eb01:0203']) t.equal(parseMac(bad), null, `"${bad}" refused`);
  t.ok(isRaspberryPi('dc:a6:32:00:00:01'));
  t.notOk(isRaspberryPi('52:54:00:00:00:01'));
});
