import t from 'tap';
import dgram from 'node:dgram';
import { setReading } from './udp-reading.js';

// A bound socket whose reads are stopped receives nothing, keeps the datagrams in the kernel queue,
// and delivers them once reads restart; a closed socket says it cannot.

t.test('stopped reads leave datagrams queued; restarted reads deliver them; a closed socket refuses', async (t) => {
  const server = dgram.createSocket('udp4');
  const client = dgram.createSocket('udp4');
  t.teardown(() => client.close());
  let got = 0;
  server.on('message', () => got++);
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', () => resolve()));
  const port = server.address().port;
  const sendAll = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise<void>((resolve) => client.send('x', port, '127.0.0.1', () => resolve()));
  };
  t.ok(setReading(server, false), 'reads stopped');
  t.ok(setReading(server, false), 'stopping twice is fine');
  await sendAll(5);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(got, 0, 'nothing read while stopped');
  t.ok(setReading(server, true), 'reads restarted');
  for (let i = 0; i < 40 && got < 5; i++) await new Promise((r) => setTimeout(r, 25));
  t.equal(got, 5, 'the queued datagrams arrive');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.notOk(setReading(server, false), 'a closed socket: no');
  t.notOk(setReading(server, true), 'a closed socket: no');
});
