import t from 'tap';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from '../../services/tftp/server.js';
import { tftpConfig } from '../../services/tftp/config.js';
import { encodeAck, encodeError, encodeRequest } from '../../services/tftp/wire.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';

// A flood of transfers that fail (the client answers the OACK with ERROR 8, or takes one block and
// then sends an ERROR) must not write a log line per transfer: lines per outcome are rate-limited and
// the next line that is written says how many were left out, while every failure is counted. A client
// refusing the OACK before taking any data (RFC 2347 option refusal; PXE ROMs' tsize probe does it on
// every boot) is not a warning. lanha's TFTP server in this process on loopback, workers 0 and 2.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (cond()) return true;
  return cond();
}

const FLOOD = 40;

for (const workers of [0, 2]) t.test(`failing transfers in a flood are counted, their log lines bounded (workers: ${workers})`, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lanha-tftp-failed-'));
  writeFileSync(join(root, 'pxelinux.0'), Buffer.alloc(40_000, 7));
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const config = { ...tftpConfig.parse({ root, maxTransfers: 64, perClientTransfers: 64, workers }), port: 0 };
  const server = new TftpServer({ config, addresses: ['127.0.0.1'], log, clock: systemClock });
  await server.start();
  // One client probes (RRQ with tsize, ERROR 8 on the OACK), the other fails after a block.
  const socket = dgram.createSocket('udp4');
  const other = dgram.createSocket('udp4');
  t.teardown(async () => {
    socket.close();
    other.close();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  });
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  await new Promise<void>((ok) => other.bind(0, '127.0.0.1', ok));
  // OACK (opcode 6) -> ERROR 8 (tsize probe); DATA 1 (opcode 3) -> ACK 1 then ERROR on DATA 2.
  socket.on('message', (msg, rinfo) => {
    if (msg[1] === 6) socket.send(encodeError(8, 'tsize only'), rinfo.port, rinfo.address);
  });
  other.on('message', (msg, rinfo) => {
    if (msg[1] === 3 && msg[3] === 1) other.send(encodeAck(1), rinfo.port, rinfo.address);
    else if (msg[1] === 3 && msg[3] === 2) other.send(encodeError(0, 'client gave up'), rinfo.port, rinfo.address);
  });
  // The probes are declined (tftp.transfers_declined), the others failed: every one is counted once.
  const failed = (): number => server.counters.get('tftp.transfers_failed') + server.counters.get('tftp.transfers_declined');
  for (let i = 0; i < FLOOD; i++) {
    socket.send(encodeRequest('rrq', 'pxelinux.0', 'octet', [{ name: 'tsize', value: '0' }]), server.port(), '127.0.0.1');
    other.send(encodeRequest('rrq', 'pxelinux.0', 'octet'), server.port(), '127.0.0.1');
    await until(() => failed() >= 2 * (i + 1), 5000);
  }
  t.equal(failed(), 2 * FLOOD, 'every failed transfer is counted');
  const ended = lines.filter((l) => l['event'] === 'tftp.transfer.failed');
  t.ok(ended.length <= 12, `at most a burst of lines per outcome in the window (${ended.length} for ${2 * FLOOD} transfers)`);
  t.ok(ended.length >= 2, 'but each outcome is logged');
  const probes = lines.filter((l) => l['event'] === 'tftp.transfer.declined');
  t.ok(probes.length >= 1, 'a client refusing the OACK before any data is logged as declined');
  t.ok(probes.every((l) => l['level'] === 'info'), 'at info level, not as a warning');
  t.notOk(ended.some((l) => l['bytes'] === 0 && l['outcome'] === 'peer-error'), 'and not as a failed transfer');
  t.ok(lines.filter((l) => l['level'] === 'warn' || l['level'] === 'error').length <= 6, 'warnings stay within one burst');
  await sleep(10_100); // the next window: the first line says how many were left out
  other.send(encodeRequest('rrq', 'pxelinux.0', 'octet'), server.port(), '127.0.0.1');
  await until(() => failed() === 2 * FLOOD + 1, 5000);
  const next = lines.filter((l) => l['event'] === 'tftp.transfer.failed').at(-1);
  t.ok(Number(next?.['suppressed']) > 0, `the next window's first line counts the lines left out (${String(next?.['suppressed'])})`);
});
