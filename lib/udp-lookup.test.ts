import t from 'tap';
import dgram from 'node:dgram';
import { answerLookupsAtOnce } from './udp-lookup.js';
import { dgramState } from './udp-reading.js';

// A socket built with the default lookup (as a child process's copy of a socket handed over IPC
// is) answers its destination lookups synchronously once patched, and still delivers.

t.test('answerLookupsAtOnce: the lookup answers in the same tick; sends still arrive', async (t) => {
  const server = dgram.createSocket('udp4');
  const client = dgram.createSocket('udp4');
  t.teardown(() => { server.close(); client.close(); });
  const got = new Promise<string>((resolve) => server.once('message', (m) => resolve(m.toString())));
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', () => resolve()));
  await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', () => resolve()));
  t.ok(answerLookupsAtOnce(client), 'patched');
  let sync = false;
  dgramState(client)!.handle!.lookup('127.0.0.1', (err, address) => { sync = err === null && address === '127.0.0.1'; });
  t.ok(sync, 'answered before lookup() returned');
  client.send('hello', server.address().port, '127.0.0.1');
  t.equal(await got, 'hello', 'delivered');
});
