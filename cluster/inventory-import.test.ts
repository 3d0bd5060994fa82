// The import parser: dnsmasq dhcp-host lines in their common forms and /etc/hosts lines, joined by IP;
// one report per line (node, skipped with why, error naming the clash); one bad line spoils nothing else.
import t from 'tap';
import { parseImport } from './inventory-import.js';

const dnsmasq = `# dnsmasq.d/cluster.conf
domain=cluster.lan
dhcp-host=52:54:00:00:00:01,10.0.0.21
dhcp-host=52:54:00:00:00:02,rack2,10.0.0.22
dhcp-host=52:54:00:00:00:03,10.0.0.23,rack3,infinite
dhcp-host=52-54-00-00-00-04,set:pi,rack4.cluster.lan,10.0.0.24,12h
dhcp-host=id:01:02:03,10.0.0.30
dhcp-host=52:54:00:00:00:05,rack2,10.0.0.25
dhcp-host=52:54:00:00:00:0g,10.0.0.26
dhcp-host=52:54:00:00:00:07,10.0.0.27
dhcp-host=52:54:00:00:00:01,rack8,10.0.0.28
dhcp-host=52:54:00:00:00:09,rack9
dhcp-host=52:54:00:00:00:10,52:54:00:00:00:11,10.0.0.31
dhcp-host=52:54:00:00:00:12,ignore
dhcp-host=52:54:00:00:00:13,rack_13,10.0.0.33
dhcp-host=52:54:00:00:00:14,rack14,10.0.0.22
`;
const hosts = `127.0.0.1 localhost
::1 localhost ip6-localhost
10.0.0.21 rack1 rack1.cluster.lan
10.0.0.22 other-name
10.0.0.40 lonely
bogus line here
`;

t.test('dnsmasq and hosts lines: each line reported, the good ones become nodes', async (t) => {
  const r = parseImport([{ name: 'cluster.conf', text: dnsmasq }, { name: 'hosts', text: hosts }]);
  const at = (file: string, line: number) => r.lines.find((l) => l.file === file && l.line === line)!;
  t.same(r.nodes.map((n) => [n.name, n.mac, n.ip]), [
    ['rack1', '52:54:00:00:00:01', 0x0a000015],
    ['rack2', '52:54:00:00:00:02', 0x0a000016],
    ['rack3', '52:54:00:00:00:03', 0x0a000017],
    ['rack4', '52:54:00:00:00:04', 0x0a000018],
    ['rack9', '52:54:00:00:00:09', undefined],
  ]);
  t.match(at('cluster.conf', 2), { outcome: 'skipped', message: 'not a dhcp-host line' });
  t.match(at('cluster.conf', 3), { outcome: 'node', message: /^node rack1 52:54:00:00:00:01 10\.0\.0\.21$/ });
  t.match(r.nodes[0]!.source, 'cluster.conf:3 (name from hosts:3)', 'MAC,IP: the name comes from the hosts line');
  t.match(at('cluster.conf', 4), { outcome: 'node', message: /other-name; the dhcp-host name wins/ });
  t.match(at('cluster.conf', 5), { outcome: 'node', message: /lease time infinite ignored/ });
  t.match(at('cluster.conf', 6), { outcome: 'node', message: /tag set:pi ignored.*cut to its first label rack4/ });
  t.match(at('cluster.conf', 7), { outcome: 'skipped', message: /client-id entry/ });
  t.match(at('cluster.conf', 8), { outcome: 'error', message: 'duplicate name rack2: already on cluster.conf:4' });
  t.match(at('cluster.conf', 9), { outcome: 'error', message: 'MAC "52:54:00:00:00:0g" is not a MAC address like 52:54:00:12:34:56' });
  t.match(at('cluster.conf', 10), { outcome: 'error', message: 'no name: the line has none and no hosts line gives one for 10.0.0.27' });
  t.match(at('cluster.conf', 11), { outcome: 'error', message: 'duplicate MAC 52:54:00:00:00:01: already on cluster.conf:3' });
  t.match(at('cluster.conf', 12), { outcome: 'node', message: 'node rack9 52:54:00:00:00:09' });
  t.match(at('cluster.conf', 13), { outcome: 'skipped', message: /several MACs/ });
  t.match(at('cluster.conf', 14), { outcome: 'skipped', message: /ignore/ });
  t.match(at('cluster.conf', 15), { outcome: 'error', message: /name "rack_13" is not a DNS label/ });
  t.match(at('cluster.conf', 16), { outcome: 'error', message: 'duplicate IP 10.0.0.22: already on cluster.conf:4' });
  t.match(at('hosts', 1), { outcome: 'skipped', message: /loopback/ });
  t.match(at('hosts', 2), { outcome: 'skipped', message: 'IPv6 hosts line' });
  t.match(at('hosts', 3), { outcome: 'skipped', message: /names the dhcp-host entry for 10\.0\.0\.21; aliases rack1\.cluster\.lan not imported/ });
  t.match(at('hosts', 5), { outcome: 'skipped', message: /no MAC for 10\.0\.0\.40.*lanctl nodes add lonely --mac M --ip 10\.0\.0\.40/ });
  t.match(at('hosts', 6), { outcome: 'error', message: /"bogus" is neither an IPv4 address/ });
  t.equal(r.lines.length, 21, 'every non-blank, non-comment line has a report');
});

t.test('hostile input: never throws, long and odd lines are reported', async (t) => {
  const r = parseImport([{ name: 'x', text: 'dhcp-host=' + ','.repeat(10_000) + '\n\u0000\u0001\n10.0.0.1\ndhcp-host=52:54:00:00:00:01,10.0.0.1,10.0.0.2\n' }]);
  t.same(r.nodes, []);
  t.same(r.lines.map((l) => l.outcome), ['skipped', 'error', 'error', 'error']);
  t.match(r.lines[3]!.message, /two IPv4 addresses/);
});

t.test('hostile input: messages quote the file escaped (no terminal control), look-alike names refused', async (t) => {
  const r = parseImport([{ name: 'x', text: 'dhcp-host=52:54:00:00:00:01,r\u0430ck1\n10.0.0.5 \u001b]0;pwned\u0007\ndhcp-host=52:54:00:00:00:02,\u212aube\n\u001b[2Jbogus\n' }]);
  t.same(r.nodes, []);
  t.same(r.lines.map((l) => l.outcome), ['error', 'error', 'error', 'error']);
  for (const l of r.lines) t.notMatch(l.message, /[^\x20-\x7e]/, `line ${l.line}: the message is printable ASCII`);
  t.match(r.lines[0]!.message, /name "r\\u0430ck1" is not a DNS label/);
  t.match(r.lines[2]!.message, /name "\\u212aube"/);
});
