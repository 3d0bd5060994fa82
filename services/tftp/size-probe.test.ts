import t from 'tap';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from './server.js';
import { tftpConfig } from './config.js';
import { decodePacket, encodeError, encodeRequest } from './wire.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';

// UEFI PXE's size probe, as OVMF (EDK2 MTFTP4) sends it on every boot (captured in
// test/integ/boot-ovmf.test.ts): RRQ with tsize 0, blksize 1468 and windowsize 4; our OACK; then
// ERROR 8 "User aborted the transfer" from the client's port, before any data. It is a declined
// transfer: counted as `tftp.transfers_declined` and nowhere else (not `transfers_failed`, which
// rose once per boot), logged at info, and its slot is free at once, not at the transfer's timeout.
// lanha's TFTP server in this process on loopback, workers 0 and 2.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) if (cond()) return true;
  return cond();
}

for (const workers of [0, 2]) t.test(`a UEFI size probe is declined, not failed, and frees its slot at once (workers: ${workers})`, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lanha-tftp-probe-'));
  writeFileSync(join(root, 'ipxe.efi'), Buffer.alloc(850_528, 3));
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  // One transfer slot: a probe still holding it would make the real download that follows busy.
  const config = { ...tftpConfig.parse({ root, maxTransfers: 1, perClientTransfers: 1, workers }), port: 0 };
  const server = new TftpServer({ config, addresses: ['127.0.0.1'], log, clock: systemClock });
  await server.start();
  const client = dgram.createSocket('udp4');
  t.teardown(async () => {
    client.close();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  });
  await new Promise<void>((ok) => client.bind(0, '127.0.0.1', ok));
  const oack = new Promise<Record<string, string>>((ok) => client.once('message', (msg, rinfo) => {
    const d = decodePacket(msg);
    if (d.ok && d.value.op === 'oack') {
      client.send(encodeError(8, 'User aborted the transfer'), rinfo.port, rinfo.address);
      ok(Object.fromEntries(d.value.options.map((o) => [o.name, o.value])));
    }
  }));
  client.send(encodeRequest('rrq', 'ipxe.efi', 'octet', [{ name: 'tsize', value: '0' }, { name: 'blksize', value: '1468' }, { name: 'windowsize', value: '4' }]), server.port(), '127.0.0.1');
  t.same(await oack, { tsize: '850528', blksize: '1468', windowsize: '4' }, 'the OACK gives the size and takes both options');
  t.ok(await until(() => server.counters.get('tftp.transfers_declined') === 1), 'counted as declined');
  t.ok(await until(() => server.activeTransfers === 0, 2000), 'the slot is free well before any timeout');
  await sleep(600); // one worker counter report (every 0.5 s): nothing else may arrive
  t.equal(server.counters.get('tftp.transfers_failed'), 0, 'not a failed transfer');
  t.equal(server.counters.get('tftp.transfers_started'), 1);
  const probe = lines.filter((l) => l['file'] === 'ipxe.efi');
  t.same(probe.map((l) => [l['event'], l['level']]), [['tftp.transfer.declined', 'info']], 'one info line, no warning');
});
