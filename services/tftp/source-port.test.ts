import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from './server.js';
import { tftpConfig } from './config.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { haveTools } from '../../test/support/tools.js';
import { freePort } from '../../test/support/ports.js';

// A datagram from source port 0 (forged: no socket sends from it) names no port a reply can go to.
// Each such RRQ went to a transfer thread, failed its first send (ERR_SOCKET_BAD_PORT) and was an
// ERROR line, "starting a transfer failed", counted with the server's own failures. Sent here from
// a raw socket (python3, root): the same RRQ, the same source address, only the port is 0.

/** An IPv4/UDP datagram from `src`:0 to `dst`:`port`, written on a raw socket (IP_HDRINCL). */
const RAW_SEND = `
import socket, struct, sys
src, dst, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
udp = struct.pack('!HHHH', 0, port, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(ip + udp, (dst, 0))
`;

t.test('an RRQ from source port 0 is dropped at the listener and counted, never started', async (t) => {
  if (process.getuid?.() !== 0) {
    process.stderr.write('\n*** SKIPPED services/tftp/source-port.test: needs root (a raw socket sends from port 0)\n');
    t.pass('SKIPPED: needs root');
    return;
  }
  if (!haveTools(t, ['python3'], 'TFTP source port 0 test')) return;
  const root = mkdtempSync(join(tmpdir(), 'lanha-tftp-port0-'));
  writeFileSync(join(root, 'hello.txt'), 'hello\n', { mode: 0o644 });
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const server = new TftpServer({ config: tftpConfig.parse({ root, workers: 1, port: await freePort() }), addresses: ['127.0.0.1'], log, clock: systemClock });
  await server.start();
  t.teardown(async () => { await server.stop(); rmSync(root, { recursive: true, force: true }); });
  const rrq = Buffer.from('\x00\x01hello.txt\x00octet\x00', 'latin1');
  for (let i = 0; i < 3; i++) execFileSync('python3', ['-c', RAW_SEND, '127.0.0.9', '127.0.0.1', String(server.port()), rrq.toString('hex')]);
  const counters = (): Record<string, number> => server.counters.toJSON();
  for (let i = 0; i < 100 && (counters()['tftp.dropped.source-port-zero'] ?? 0) + (counters()['tftp.errors'] ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(counters()['tftp.dropped.source-port-zero'], 3, 'each one counted as dropped');
  t.equal(counters()['tftp.errors'], undefined, 'none counted as a failure of the server');
  t.equal(counters()['tftp.transfers_started'], undefined, 'no transfer started');
  t.same(lines.filter((l) => l['level'] === 50).map((l) => l['msg']), [], 'no error line');
  t.ok(lines.some((l) => l['event'] === 'tftp.dropped' && l['kind'] === 'source-port-zero' && l['client'] === '127.0.0.9:0'), 'a debug line names the source');
});
