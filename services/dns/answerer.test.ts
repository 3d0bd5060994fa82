// The answerer's UDP send never throws out of a reply path: a forwarded answer that comes back after
// its socket closed (the VIP went, and with it the socket bound on it) is counted and dropped. Before,
// send() on the closed socket threw ERR_SOCKET_DGRAM_NOT_RUNNING from the forwarder's callback.
import t from 'tap';
import dgram from 'node:dgram';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { DnsAnswerer } from './answerer.js';
import { DatagramSender } from '../../lib/udp-direct.js';
import { buildZoneSet } from './zone.js';

t.test('a reply sent on a closed socket is counted, not thrown', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353, zones: [{ name: rack.lan, records: ["ns A 127.0.0.1"] }] }
`);
  const answerer = new DnsAnswerer({
    cfg: config.dns!, nodeName: 'lan-a', clock: systemClock, log: silentLogger,
    zones: buildZoneSet({ zones: [], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 }),
  });
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  const rinfo = { address: '127.0.0.1', port: 9, family: 'IPv4', size: 0 } as const;
  const out = new DatagramSender(socket);
  t.doesNotThrow(() => answerer.sendUdp(out, new Uint8Array(12), rinfo));
  t.equal(answerer.counters.toJSON()['dns.udp.send_failed'], 1, 'counted as a failed send');
});
