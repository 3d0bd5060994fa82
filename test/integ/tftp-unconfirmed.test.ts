import t from 'tap';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from '../../services/tftp/server.js';
import { tftpConfig } from '../../services/tftp/config.js';
import { decodePacket, encodeAck, encodeRequest } from '../../services/tftp/wire.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { haveTools, runTool } from '../support/tools.js';

// Transfers whose client never acknowledged anything (spoofed or dead sources: an RRQ and then
// silence) fill the transfer table; real clients must still be served, from a slot such a transfer
// gives up once it has gone a whole retransmit interval (tftp.timeout) without an ACK. Transfers
// whose client has acknowledged something keep their slots. lanha's TFTP server in this process on
// loopback (port 0), in worker threads and on the main thread; curl and a raw client that retries
// its RRQ like firmware does. Attackers speak from 127.0.0.9 and up.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (cond()) return true;
  return cond();
}

/** A client socket on `address`; `packets` collects every TFTP packet it receives, with its source port. */
async function client(address: string): Promise<{ socket: dgram.Socket; packets: Array<{ op: string; block: number; port: number }> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => undefined);
  const packets: Array<{ op: string; block: number; port: number }> = [];
  socket.on('message', (msg, rinfo) => {
    const d = decodePacket(msg);
    if (d.ok) packets.push({ op: d.value.op, block: d.value.op === 'data' || d.value.op === 'ack' ? d.value.block : -1, port: rinfo.port });
  });
  await new Promise<void>((ok) => socket.bind(0, address, ok));
  return { socket, packets };
}

for (const workers of [2, 0]) t.test(`a table full of never-acknowledged transfers (workers: ${workers})`, async (t) => {
  if (!haveTools(t, ['curl'], 'tftp unconfirmed-transfer test')) return;
  const root = mkdtempSync(join(tmpdir(), 'lanha-tftp-unconfirmed-'));
  writeFileSync(join(root, 'hello.txt'), 'hello\n');
  writeFileSync(join(root, 'big.bin'), randomBytes(1 << 20));
  const sockets: dgram.Socket[] = [];
  const servers: TftpServer[] = [];
  t.teardown(async () => {
    for (const s of sockets) s.close();
    for (const s of servers) await s.stop();
    rmSync(root, { recursive: true, force: true });
  });
  const log = createLogger({ level: 'warn', destination: { write: () => undefined } });
  // A never-acknowledged transfer retransmits twice (at 2 and 6 s) and gives up at 14 s: longer than
  // any client below waits, so only a reclaimed slot serves it. An acknowledged one: 10 retries.
  const start = async (timeout = '2s'): Promise<{ server: TftpServer; port: number }> => {
    const config = { ...tftpConfig.parse({ root, maxTransfers: 8, perClientTransfers: 4, timeout, retries: 10, workers }), port: 0 };
    const server = new TftpServer({ config, addresses: ['127.0.0.1'], log, clock: systemClock });
    await server.start();
    servers.push(server);
    return { server, port: server.port() };
  };
  const started = (s: TftpServer): number => s.counters.get('tftp.transfers_started');
  /** `sources` x 4 RRQs for big.bin, one per socket; each may ACK the first DATA it gets (`confirm`) and then says nothing. */
  type Client = Awaited<ReturnType<typeof client>>;
  const fill = async (s: TftpServer, port: number, sources: number, confirm: boolean): Promise<Client[]> => {
    const before = started(s);
    const clients: Client[] = [];
    for (let i = 0; i < sources * 4; i++) {
      const c = await client(`127.0.0.${9 + (i % sources)}`);
      sockets.push(c.socket);
      clients.push(c);
      if (confirm) {
        c.socket.on('message', (msg, rinfo) => {
          if (msg[1] === 3 && msg[3] === 1 && c.packets.filter((p) => p.op === 'data').length === 1) c.socket.send(encodeAck(1), rinfo.port, rinfo.address);
        });
      }
      c.socket.send(encodeRequest('rrq', 'big.bin', 'octet'), port, '127.0.0.1');
    }
    t.ok(await until(() => started(s) - before === sources * 4), `${sources * 4} transfers started`);
    return clients;
  };

  await t.test('curl is served while spoofed-looking transfers hold every slot', async (t) => {
    const { server, port } = await start();
    await fill(server, port, 2, false);
    t.equal(server.activeTransfers, 8, 'the table is full');
    await sleep(2100); // past one retransmit interval: none of them has been acknowledged
    const got = await runTool('curl', ['-s', '--max-time', '6', `tftp://127.0.0.1:${port}/hello.txt`]);
    t.equal(got.out, 'hello\n', 'curl tftp:// got the file');
    t.ok(server.counters.get('tftp.reclaimed_unconfirmed') >= 1, `a never-acknowledged transfer gave its slot (${server.counters.get('tftp.reclaimed_unconfirmed')})`);
    t.ok(server.activeTransfers <= 8, `the table never grows past maxTransfers (${server.activeTransfers})`);
    await server.stop();
  });

  await t.test('a firmware-like client re-sending its RRQ from the same port is served', async (t) => {
    const { server, port } = await start();
    await fill(server, port, 2, false);
    const fw = await client('127.0.0.1');
    sockets.push(fw.socket);
    // RRQ every 500 ms from the same port until DATA 1 comes (the first may meet slots too young to take).
    for (let i = 0; i < 12 && !fw.packets.some((p) => p.op === 'data'); i++) {
      fw.socket.send(encodeRequest('rrq', 'hello.txt', 'octet'), port, '127.0.0.1');
      await until(() => fw.packets.some((p) => p.op === 'data'), 500);
    }
    const data = fw.packets.find((p) => p.op === 'data');
    t.equal(data?.block, 1, 'DATA 1 came');
    if (data !== undefined) fw.socket.send(encodeAck(1), data.port, '127.0.0.1');
    t.ok(await until(() => server.counters.get('tftp.transfers_done') === 1), 'and the transfer completed');
    await server.stop();
  });

  await t.test('a source at its perClientTransfers share with only unacknowledged transfers is served from its own oldest', async (t) => {
    const { server, port } = await start();
    await fill(server, port, 1, false);
    t.equal(server.activeTransfers, 4, 'the source holds its share');
    await sleep(2100);
    const again = await client('127.0.0.9');
    sockets.push(again.socket);
    again.socket.send(encodeRequest('rrq', 'hello.txt', 'octet'), port, '127.0.0.1');
    t.ok(await until(() => again.packets.some((p) => p.op === 'data')), 'its new request (a new port) is answered');
    t.equal(server.counters.get('tftp.reclaimed_unconfirmed_own'), 1, 'from one of its own slots, counted');
    t.equal(server.counters.get('tftp.client_busy'), 0, 'not refused');
    await server.stop();
  });

  await t.test('transfers whose clients acknowledged something keep their slots', async (t) => {
    const { server, port } = await start();
    const acked = await fill(server, port, 2, true);
    t.equal(server.activeTransfers, 8, 'the table is full');
    t.ok(await until(() => acked.every((c) => c.packets.some((p) => p.op === 'data' && p.block === 2))), 'every client acknowledged DATA 1 and got DATA 2');
    await sleep(2100); // past one retransmit interval since they started
    const got = await runTool('curl', ['-s', '--max-time', '2', `tftp://127.0.0.1:${port}/hello.txt`]);
    t.not(got.out, 'hello\n', 'curl is not served');
    t.ok(server.counters.get('tftp.busy') >= 1, 'its request was dropped as busy');
    t.equal(server.counters.get('tftp.reclaimed_unconfirmed'), 0, 'and no acknowledged transfer was ended for it');
    await server.stop();
  });

  await t.test('a transfer nobody acknowledges gives up after two retransmissions, without an ERROR; the same client\'s RRQ retry then starts afresh', async (t) => {
    const { server, port } = await start('300ms');
    const lost = await client('127.0.0.1');
    sockets.push(lost.socket);
    lost.socket.send(encodeRequest('rrq', 'hello.txt', 'octet'), port, '127.0.0.1');
    t.ok(await until(() => started(server) === 1), 'the transfer started');
    t.ok(await until(() => server.activeTransfers === 0), 'and ended');
    t.equal(lost.packets.filter((p) => p.op === 'data').length, 3, 'DATA 1 sent three times in all');
    t.equal(lost.packets.filter((p) => p.op === 'error').length, 0, 'and no ERROR (firmware would give up on one)');
    t.ok(await until(() => (server.status().counters as Record<string, number>)['tftp.unconfirmed_gave_up'] === 1), 'counted');
    lost.socket.send(encodeRequest('rrq', 'hello.txt', 'octet'), port, '127.0.0.1'); // the client's RRQ retry, same port
    t.ok(await until(() => lost.packets.filter((p) => p.op === 'data').length === 4), 'is answered by a new transfer');
    const data = lost.packets.at(-1)!;
    lost.socket.send(encodeAck(1), data.port, '127.0.0.1');
    t.ok(await until(() => server.counters.get('tftp.transfers_done') === 1), 'which completes');
    await server.stop();
  });
});
