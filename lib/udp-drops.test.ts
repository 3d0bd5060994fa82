import t from 'tap';
import dgram from 'node:dgram';
import { literalLookup } from './udp-lookup.js';
import { readUdpDrops, udpDropsFromTable } from './udp-drops.js';

// The kernel's per-socket drop count: found by address and port in /proc/net/udp's text (either
// byte order), null for what is not listed; and a real socket that is sent more than its queue
// holds while nothing reads it shows drops.

const TABLE = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  579: 0100007F:2B74 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1915285 2 00000000f1b6009a 4711
 1380: 0200007F:2B74 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1913583 2 00000000be50a83c 0
`;

t.test('the table: by address and port, either byte order, null when absent or not IPv4', async (t) => {
  t.equal(udpDropsFromTable(TABLE, '127.0.0.1', 11124, true), 4711);
  t.equal(udpDropsFromTable(TABLE, '127.0.0.2', 11124, true), 0);
  t.equal(udpDropsFromTable(TABLE.replace('0100007F', '7F000001'), '127.0.0.1', 11124, false), 4711, 'big-endian spelling');
  t.equal(udpDropsFromTable(TABLE, '127.0.0.1', 11125, true), null, 'another port');
  t.equal(udpDropsFromTable(TABLE, '127.0.0.3', 11124, true), null, 'another address');
  t.equal(udpDropsFromTable(TABLE, '::1', 11124, true), null, 'IPv6 is not looked up');
  t.equal(udpDropsFromTable(TABLE, 'not an address', 11124, true), null);
  t.equal(udpDropsFromTable('', '127.0.0.1', 11124, true), null);
  t.equal(udpDropsFromTable(TABLE.replace('4711', 'x'), '127.0.0.1', 11124, true), null, 'a drops field that is not a count');
});

t.test('a socket nobody reads, sent more than its queue holds, shows the kernel drops', async (t) => {
  const sink = dgram.createSocket('udp4');
  const sender = dgram.createSocket({ type: 'udp4', lookup: literalLookup(4) }); // sends at once, no deferred lookup
  t.teardown(() => { sink.close(); sender.close(); });
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve)); // unbound, dgram would queue the sends
  const port = sink.address().port;
  t.equal(readUdpDrops('127.0.0.1', port), 0, 'none yet');
  // One synchronous run: this event loop reads nothing meanwhile.
  const n = 20_000;
  let read = 0;
  sink.on('message', () => read++);
  for (let i = 0; i < n; i++) sender.send(Buffer.alloc(48), port, '127.0.0.1');
  const drops = readUdpDrops('127.0.0.1', port) ?? 0;
  t.ok(drops > 0, `${drops} dropped`);
  const end = Date.now() + 5000;
  while (read + drops < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  t.equal(read + drops, n, 'each datagram read or dropped');
  t.equal(readUdpDrops('127.0.0.1', 1), null, 'a port nobody bound');
});
