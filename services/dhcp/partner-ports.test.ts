// The partner's ports (partner-ports.ts) on loopback: a port something listens on accepts, a port
// nothing listens on resets at once; every port must reset for `refused`.
import t from 'tap';
import { createServer, type Server } from 'node:net';
import { knock, partnerPorts } from './partner-ports.js';

const listening = (): Promise<{ server: Server; port: number }> => new Promise((resolve) => {
  const server = createServer((s) => s.destroy());
  server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
});

t.test('open, refused, and both together', async (t) => {
  const open = await listening();
  const closed = await listening();
  const closedPort = closed.port;
  await new Promise<void>((r) => closed.server.close(() => r()));
  const closed2 = await listening();
  const closedPort2 = closed2.port;
  await new Promise<void>((r) => closed2.server.close(() => r()));
  try {
    t.equal(await knock('127.0.0.1', open.port, 2000), 'open', 'a listening port accepts');
    t.equal(await knock('127.0.0.1', closedPort, 2000), 'refused', 'nothing listening: a reset');
    t.equal(await partnerPorts('127.0.0.1', [closedPort, closedPort2], 2000), 'refused', 'both reset: its lanha is down');
    t.equal(await partnerPorts('127.0.0.1', [closedPort, open.port], 2000), 'open', 'one accepts: it runs (a firewall resets the other)');
    t.equal(await partnerPorts('127.0.0.1', [closedPort], 2000), 'silent', 'one port alone is not enough to say it is down');
  } finally {
    open.server.close();
  }
});
