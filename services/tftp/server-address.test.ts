import t from 'tap';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from './server.js';
import { tftpConfig } from './config.js';
import { encodeRequest } from './wire.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { freePort } from '../../test/support/ports.js';

// An address going away under pending requests (the VIP released while read requests for it are
// being looked up): the refusals that come back after its socket closed must not throw out of the
// server (a lab run on a loaded machine crashed the daemon with ERR_SOCKET_DGRAM_NOT_RUNNING).

t.test('requests pending when their address is removed are dropped, not a crash', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lanha-tftp-addr-'));
  // A fixed port: an added address binds the configured port (0 would give it another one).
  const server = new TftpServer({ config: tftpConfig.parse({ root, workers: 0, port: await freePort() }), addresses: ['127.0.0.1'], log: silentLogger, clock: systemClock });
  await server.start();
  const port = server.port();
  // Requests from distinct clients (a transfer is keyed by address:port; perClientTransfers counts per address).
  const clients = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const c = dgram.createSocket('udp4');
    await new Promise<void>((ok) => c.bind(0, `127.0.0.${20 + i}`, ok));
    return c;
  }));
  t.teardown(async () => { for (const c of clients) c.close(); await server.stop(); rmSync(root, { recursive: true, force: true }); });
  const crashes: unknown[] = [];
  const onUncaught = (error: unknown): void => { crashes.push(error); };
  process.on('uncaughtException', onUncaught);
  t.teardown(() => { process.off('uncaughtException', onUncaught); });
  for (let round = 0; round < 20; round++) {
    await server.addAddress('127.0.0.3');
    for (const [i, c] of clients.entries()) c.send(encodeRequest('rrq', `missing-${round}-${i}.bin`, 'octet'), port, '127.0.0.3');
    // The address goes as soon as a request is admitted: its file lookup is on the thread pool, and
    // its answer can come back in a later turn of the loop at the earliest, after this check.
    for (let i = 0; i < 2000 && server.activeTransfers === 0; i++) await new Promise((r) => setImmediate(r));
    await server.removeAddress('127.0.0.3');
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 200));
  t.same(crashes.map(String), [], 'nothing thrown out of the server');
  const refused = server.counters.toJSON()['tftp.refused.not-found'] ?? 0;
  t.ok(refused > 0, `requests were handled (${refused} refused as not found)`);
  const unsent = server.counters.toJSON()['tftp.refusal_unsent'] ?? 0;
  t.ok(unsent > 0, `${unsent} refusals found their address gone: the case this covers happened`);
});
