import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from './server.js';
import { tftpConfig } from './config.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { canSendFromPortZero, sendFromPortZero } from '../../test/support/raw-udp.js';
import { freePort } from '../../test/support/ports.js';

// A datagram from source port 0 (forged: no socket sends from it) names no port a reply can go to.
// Each such RRQ went to a transfer thread, failed its first send (ERR_SOCKET_BAD_PORT) and was an
// ERROR line, "starting a transfer failed", counted with the server's own failures. Sent here from
// a raw socket (python3, root): the same RRQ, the same source address, only the port is 0.

t.test('an RRQ from source port 0 is dropped at the listener and counted, never started', async (t) => {
  if (!canSendFromPortZero(t, 'services/tftp/source-port.test')) return;
  const root = mkdtempSync(join(tmpdir(), 'lanha-tftp-port0-'));
  writeFileSync(join(root, 'hello.txt'), 'hello\n', { mode: 0o644 });
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const server = new TftpServer({ config: tftpConfig.parse({ root, workers: 1, port: await freePort() }), addresses: ['127.0.0.1'], log, clock: systemClock });
  await server.start();
  t.teardown(async () => { await server.stop(); rmSync(root, { recursive: true, force: true }); });
  const rrq = Buffer.from('\x00\x01hello.txt\x00octet\x00', 'latin1');
  for (let i = 0; i < 3; i++) sendFromPortZero('127.0.0.9', '127.0.0.1', server.port(), rrq);
  const counters = (): Record<string, number> => server.counters.toJSON();
  for (let i = 0; i < 100 && (counters()['tftp.dropped.source-port-zero'] ?? 0) + (counters()['tftp.errors'] ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(counters()['tftp.dropped.source-port-zero'], 3, 'each one counted as dropped');
  t.equal(counters()['tftp.errors'], undefined, 'none counted as a failure of the server');
  t.equal(counters()['tftp.transfers_started'], undefined, 'no transfer started');
  t.same(lines.filter((l) => l['level'] === 50).map((l) => l['msg']), [], 'no error line');
  t.ok(lines.some((l) => l['event'] === 'tftp.dropped' && l['kind'] === 'source-port-zero' && l['client'] === '127.0.0.9:0'), 'a debug line names the source');
});
