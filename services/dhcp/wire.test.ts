// Proves the DHCP codec against real client bytes (golden captures decode to what tshark saw) and
// table-driven edge cases (overload, RFC 3396 concatenation, option 82 last, missing END, hlen > 16).
import t from 'tap';
import { repoPath } from '../../test/support/paths.js';
import { readHexPacket } from '../../test/support/hex.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp, type DhcpMessage } from './wire.js';
import { readRequest } from './request.js';
import { DhcpOption, domainsBytes, domainsValue, routesBytes, routesValue, userClassValues, textBytes } from './options.js';

const golden = (name: string): Uint8Array => readHexPacket(repoPath('test', 'golden', 'dhcp', `${name}.hex`));

function summarize(bytes: Uint8Array): Record<string, unknown> {
  const decoded = decodeDhcp(bytes);
  if (!decoded.ok) return { error: decoded.error.code };
  const r = readRequest(decoded.value);
  if (!r.ok) return { problem: r.problem };
  const v = r.value;
  const out: Record<string, unknown> = { type: v.type, mac: v.mac, xid: v.xid.toString(16).padStart(8, '0'), ciaddr: formatIpv4(v.ciaddr), prl: v.parameterRequest.join(',') };
  if (v.requestedIp !== undefined) out['requestedIp'] = formatIpv4(v.requestedIp);
  if (v.serverId !== undefined) out['serverId'] = formatIpv4(v.serverId);
  if (v.hostname !== undefined) out['hostname'] = v.hostname;
  if (v.arch !== undefined) out['arch'] = v.arch;
  if (v.maxMessageSize !== undefined) out['maxMessageSize'] = v.maxMessageSize;
  if (v.vendorClass !== undefined) out['vendorClass'] = v.vendorClass;
  if (v.userClasses.length > 0) out['userClasses'] = v.userClasses.join(',');
  if (v.rapidCommit === true) out['rapidCommit'] = true;
  if (v.bootpVendor !== undefined) out['bootpVendor'] = v.bootpVendor;
  return out;
}

// Expected values come from tshark's own dissection of the same frames (see the .hex headers).
const CASES: Array<[string, Record<string, unknown>]> = [
  ['dhclient-discover', { type: 'discover', mac: '02:97:00:00:00:01', xid: '4c76054b', ciaddr: '0.0.0.0', hostname: 'e2e-dhclient', prl: '1,28,3,15,6,42,51,58,59' }],
  ['dhclient-request', { type: 'request', mac: '02:97:00:00:00:01', xid: '4c76054b', ciaddr: '0.0.0.0', requestedIp: '10.97.0.162', serverId: '10.97.0.1', hostname: 'e2e-dhclient', prl: '1,28,3,15,6,42,51,58,59' }],
  ['dhclient-renew', { type: 'request', mac: '02:97:00:00:00:01', xid: '4c76054b', ciaddr: '10.97.0.162', hostname: 'e2e-dhclient', prl: '1,28,3,15,6,42,51,58,59' }],
  ['dhclient-release', { type: 'release', mac: '02:97:00:00:00:01', xid: 'b88c1f39', ciaddr: '10.97.0.162', serverId: '10.97.0.1', hostname: 'e2e-dhclient', prl: '' }],
  ['udhcpc-discover', { type: 'discover', mac: '02:97:00:00:01:9f', xid: 'c9cc1071', ciaddr: '0.0.0.0', requestedIp: '10.97.0.162', prl: '1,3,6,12,15,28,42', maxMessageSize: 576, vendorClass: 'udhcp 1.35.0' }],
  ['udhcpc-request', { type: 'request', mac: '02:97:00:00:01:9f', xid: 'c9cc1071', ciaddr: '0.0.0.0', requestedIp: '10.97.0.162', serverId: '10.97.0.1', prl: '1,3,6,12,15,28,42', maxMessageSize: 576, vendorClass: 'udhcp 1.35.0' }],
  ['dhcpcd-discover', { type: 'discover', mac: '02:97:00:00:00:03', xid: 'd9435f9c', ciaddr: '0.0.0.0', hostname: 'e2e-dhcpcd', prl: '1,3,6,15,28,33,42,51,58,59', maxMessageSize: 1472, vendorClass: 'dhcpcd-9.4.1:Linux-6.18.44-fc-v669:x86_64:AuthenticAMD' }],
  ['dhcpcd-request', { type: 'request', mac: '02:97:00:00:00:03', xid: 'd9435f9c', ciaddr: '0.0.0.0', requestedIp: '10.97.0.164', serverId: '10.97.0.1', hostname: 'e2e-dhcpcd', prl: '1,3,6,15,28,33,42,51,58,59', maxMessageSize: 1472, vendorClass: 'dhcpcd-9.4.1:Linux-6.18.44-fc-v669:x86_64:AuthenticAMD' }],
  ['ipxe-discover', { type: 'discover', mac: '52:54:00:97:01:01', xid: 'f6c7743a', ciaddr: '0.0.0.0', arch: 0, maxMessageSize: 1472, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', userClasses: 'iPXE', prl: '1,3,6,7,12,15,17,26,43,60,66,67,119,128,129,130,131,132,133,134,135,175,203' }],
  ['ipxe-request', { type: 'request', mac: '52:54:00:97:01:01', xid: 'f6c7743a', ciaddr: '0.0.0.0', requestedIp: '10.97.0.189', serverId: '10.97.0.1', arch: 0, maxMessageSize: 1472, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', userClasses: 'iPXE', prl: '1,3,6,7,12,15,17,26,43,60,66,67,119,128,129,130,131,132,133,134,135,175,203' }],
  ['uboot-armv7-discover', { type: 'discover', mac: '52:54:00:97:02:01', xid: '00970b0a', ciaddr: '0.0.0.0', arch: 21, maxMessageSize: 576, vendorClass: 'U-Boot.armv7', prl: '1,3,6,12,17' }],
  ['uboot-armv7-request', { type: 'request', mac: '52:54:00:97:02:01', xid: '00970b0a', ciaddr: '0.0.0.0', requestedIp: '10.97.0.188', serverId: '10.97.0.1', arch: 21, maxMessageSize: 576, vendorClass: 'U-Boot.armv7', prl: '1,3,6,12,17' }],
  ['uboot-armv8-discover', { type: 'discover', mac: '52:54:00:97:02:02', xid: '00970aa5', ciaddr: '0.0.0.0', arch: 22, maxMessageSize: 576, vendorClass: 'U-Boot.armv8', prl: '1,3,6,12,17' }],
  ['uboot-armv8-request', { type: 'request', mac: '52:54:00:97:02:02', xid: '00970aa5', ciaddr: '0.0.0.0', requestedIp: '10.97.0.190', serverId: '10.97.0.1', arch: 22, maxMessageSize: 576, vendorClass: 'U-Boot.armv8', prl: '1,3,6,12,17' }],
  // These two were read off tcpdump 4.99's dissection (-v) of the capture (test/golden/dhcp/README.md).
  ['bootpc-request', { type: 'bootp', mac: '52:54:00:b0:07:01', xid: '24cc1755', ciaddr: '0.0.0.0', prl: '', bootpVendor: 'rfc1048' }],
  ['dhcpcd-rapid-commit-discover', { type: 'discover', mac: '52:54:00:b0:07:01', xid: '4e0c33f2', ciaddr: '0.0.0.0', prl: '1,3,6,28,33,51,58,59', maxMessageSize: 1472, vendorClass: 'dhcpcd-9.4.1:Linux-6.18.44-fc-v1147:x86_64:AuthenticAMD', rapidCommit: true }],
];

for (const [name, expected] of CASES) {
  t.test(`${name} capture decodes to the expected summary and re-encodes to the same message`, (t) => {
    const bytes = golden(name);
    t.same(summarize(bytes), expected);
    const first = decodeDhcp(bytes);
    if (!first.ok) return t.end();
    const again = decodeDhcp(encodeDhcp(first.value, 1500));
    t.ok(again.ok);
    if (again.ok) t.same(again.value, first.value);
    t.end();
  });
}

t.test('a server reply (dnsmasq OFFER) decodes too, with its options', (t) => {
  const d = decodeDhcp(golden('dnsmasq-offer'));
  t.ok(d.ok);
  if (!d.ok) return t.end();
  t.equal(d.value.op, BootOp.Reply);
  t.equal(formatIpv4(d.value.yiaddr), '10.97.0.162');
  t.same([...d.value.options.get(DhcpOption.MessageType)!], [2]);
  t.end();
});

function message(options: Array<[number, number[]]>): DhcpMessage {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.chaddr.set([2, 0, 0, 0, 0, 1]);
  for (const [code, data] of options) m.options.set(code, Uint8Array.from(data));
  return m;
}

/** Builds a raw datagram: header from `message`, then the given option bytes verbatim. */
function raw(optionBytes: number[], patch?: (b: Uint8Array) => void): Uint8Array {
  const head = encodeDhcp(message([]), 1500).subarray(0, 240);
  const out = new Uint8Array(240 + optionBytes.length);
  out.set(head);
  out.set(optionBytes, 240);
  patch?.(out);
  return out;
}

t.test('decode errors are values with the right code', (t) => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty datagram', new Uint8Array(0), 'short-header'],
    ['239 bytes', new Uint8Array(239), 'short-header'],
    ['zero cookie', new Uint8Array(300), 'bad-cookie'],
    ['options without END', raw([53, 1, 1]), 'missing-end'],
    ['option length past the end', raw([53, 9, 1]), 'option-overrun'],
    ['length byte missing', raw([53]), 'option-overrun'],
    ['hlen 17', raw([53, 1, 1, 255], (b) => { b[2] = 17; }), 'hlen-too-large'],
  ];
  for (const [what, bytes, code] of cases) {
    const d = decodeDhcp(bytes);
    t.equal(d.ok ? 'ok' : d.error.code, code, what);
  }
  t.end();
});

t.test('RFC 3396: repeated instances of an option concatenate in order', (t) => {
  const d = decodeDhcp(raw([53, 1, 1, 12, 3, 0x61, 0x62, 0x63, 0, 0, 12, 2, 0x64, 0x65, 255]));
  t.ok(d.ok);
  if (d.ok) t.equal(new TextDecoder().decode(d.value.options.get(12)), 'abcde');
  t.end();
});

t.test('a value longer than 255 octets is split on encode and joined on decode', (t) => {
  const long = Array.from({ length: 600 }, (_, i) => i & 0xff);
  const bytes = encodeDhcp(message([[53, [1]], [43, long]]), 1500);
  t.equal(bytes[240 + 3], 43);
  t.equal(bytes[240 + 4], 255, 'first fragment is 255 octets');
  const d = decodeDhcp(bytes);
  t.ok(d.ok);
  if (d.ok) t.same([...d.value.options.get(43)!], long);
  t.end();
});

t.test('option overload: file and sname carry options when the client said so (52)', (t) => {
  const bytes = raw([53, 1, 3, 52, 1, 3, 255]);
  bytes.set([12, 4, 0x6e, 0x6f, 0x64, 0x65, 255], 108); // host-name "node" in file
  bytes.set([15, 3, 0x6c, 0x61, 0x6e, 255], 44); // domain "lan" in sname
  const d = decodeDhcp(bytes);
  t.ok(d.ok);
  if (!d.ok) return t.end();
  t.equal(new TextDecoder().decode(d.value.options.get(12)), 'node');
  t.equal(new TextDecoder().decode(d.value.options.get(15)), 'lan');
  t.notOk(d.value.options.has(52), 'overload is structure, not an option');
  t.ok(d.value.file.every((b) => b === 0), 'file no longer holds a name');
  t.end();
});

t.test('encode overloads file and sname when options do not fit the limit, and it decodes back', (t) => {
  const m = message([[53, [2]], [43, Array.from({ length: 400 }, (_, i) => i & 0xff)]]);
  const bytes = encodeDhcp(m, 576);
  t.ok(bytes.length <= 576);
  const d = decodeDhcp(bytes);
  t.ok(d.ok);
  if (d.ok) t.same([...d.value.options.get(43)!], [...m.options.get(43)!]);
  t.throws(() => encodeDhcp(message([[43, Array.from({ length: 900 }, () => 1)]]), 576), RangeError);
  t.end();
});

t.test('RFC 3046: option 82 is moved last on decode and written last on encode', (t) => {
  const d = decodeDhcp(raw([82, 4, 1, 2, 0xaa, 0xbb, 53, 1, 1, 255]));
  t.ok(d.ok);
  if (!d.ok) return t.end();
  t.same([...d.value.options.keys()], [53, 82]);
  const m = message([[82, [1, 1, 9]], [53, [2]], [54, [10, 0, 0, 1]]]);
  const bytes = encodeDhcp(m, 548);
  t.same([...bytes.subarray(240, 240 + 14)], [53, 1, 2, 54, 4, 10, 0, 0, 1, 82, 3, 1, 1, 9]);
  t.end();
});

t.test('replies are padded to the 300-octet BOOTP minimum', (t) => {
  t.equal(encodeDhcp(message([[53, [2]]]), 548).length, 300);
  t.end();
});

t.test('option value codecs: 119, 121, 77', (t) => {
  const search = ['lan', 'example.org'];
  t.same(domainsValue(domainsBytes(search)), search);
  // RFC 3397 §3 example style: a compression pointer back to an earlier name.
  t.same(domainsValue(Uint8Array.from([3, 0x6c, 0x61, 0x6e, 0, 1, 0x61, 0xc0, 0])), ['lan', 'a.lan']);
  t.equal(domainsValue(Uint8Array.from([0xc0, 0])), null, 'forward/self pointer refused');
  const routes = [{ destination: parseIpv4('10.0.0.0')!, prefixLength: 8, gateway: parseIpv4('10.1.0.1')! }, { destination: 0, prefixLength: 0, gateway: parseIpv4('10.1.0.254')! }];
  const rb = routesBytes(routes);
  t.same([...rb], [8, 10, 10, 1, 0, 1, 0, 10, 1, 0, 254], 'RFC 3442 §2 compact destinations');
  t.same(routesValue(rb), routes);
  t.same(userClassValues(textBytes('iPXE')), ['iPXE'], 'iPXE sends a bare string');
  t.same(userClassValues(Uint8Array.from([4, 0x69, 0x50, 0x58, 0x45, 1, 0x78])), ['iPXE', 'x'], 'RFC 3004 items');
  t.end();
});
