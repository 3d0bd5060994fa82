import t from 'tap';
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { systemClock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { ActiveTransfer, printable, type EngineHost } from './engine.js';
import { BufferSource } from './files.js';
import { Transfer } from './transfer.js';

// A transfer's socket side (engine.ts): DATA packets from the per-transfer ring through the
// socket's handle (lib/udp-direct.ts), a send the socket queues keeping its bytes, and the same
// transfer through dgram where the handle shapes are missing.

function host(ended: (outcome: string) => void): EngineHost {
  return { clock: systemClock, counters: new Counters(), error: () => undefined, transferEnded: (_t, outcome) => ended(outcome), transferConfirmed: () => undefined };
}

function fileBytes(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
}

function dataOf(file: Buffer, blksize: number, block: number): Buffer {
  const offset = (block - 1) * blksize;
  return file.subarray(offset, Math.min(file.length, offset + blksize));
}

function ack(block: number): Buffer {
  return Buffer.from([0, 4, block >> 8, block & 0xff]);
}

const peer = { address: '127.0.0.1', port: 9 };
const client = { ip: '127.0.0.1' };
const rinfo = { address: '127.0.0.1', port: 9, family: 'IPv4', size: 4 };

t.test('a DATA packet the socket queued keeps its bytes while the client acknowledges ahead', async (t) => {
  // A stand-in connected socket whose handle queues every send (libuv with a full send buffer) and
  // never lets one leave: every packet must still read as it was sent when the transfer ends.
  const sent: (Uint8Array | null)[][] = [];
  const handle = {
    onmessage(_nread: number, _h: unknown, _buf: unknown, _r: unknown): void { /* replaced by the engine */ },
    send(_req: object, list: (Uint8Array | null)[], ...rest: unknown[]): number {
      t.equal(rest.length, 2, 'a connected send: count and hasCallback only');
      sent.push(list);
      return 0;
    },
    recvStart: () => 0, recvStop: () => 0, lookup: () => undefined,
  };
  const socket = Object.assign(new EventEmitter(), { close: () => undefined, [Symbol('state symbol')]: { handle, receiving: true } });
  const stranger = Object.assign(new EventEmitter(), { close: () => undefined });
  const blksize = 512;
  const windowsize = 4;
  const file = fileBytes(blksize * 20 + 100);
  const core = new Transfer({ size: file.length, blksize, windowsize, timeoutMs: 60_000, retries: 5, idleTimeoutMs: 60_000, oack: false });
  let outcome = '';
  const transfer = new ActiveTransfer(host((o) => { outcome = o; }), 1, { peer: socket as unknown as dgram.Socket, stranger: stranger as unknown as dgram.Socket }, peer, core, new BufferSource(file), [], 'f', 'f', client);
  t.ok(transfer.direct, 'sends go through the handle');
  transfer.begin();
  // The client acknowledges each window's last block as soon as it is handed to the socket.
  for (let acked = 0; outcome === '';) {
    const last = sent.length;
    t.ok(last > acked, 'the window went out');
    handle.onmessage(4, handle, ack(last), rinfo);
    acked = last;
  }
  t.equal(outcome, 'done');
  t.equal(sent.length, core.lastBlock, 'every block sent once');
  const wrong = sent.map((list) => list[0] as Buffer).flatMap((packet, i) => {
    const block = i + 1;
    const ok = packet.readUInt16BE(0) === 3 && packet.readUInt16BE(2) === block && packet.subarray(4).equals(dataOf(file, blksize, block));
    return ok ? [] : [block];
  });
  t.same(wrong, [], 'every queued packet as it was sent');
  transfer.finish('test');
});

/** A lock-step (or windowed) client on a real socket: ACKs the last block of each window, returns the file. */
function download(sock: dgram.Socket, blksize: number, windowsize: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let expect = 1;
  return new Promise((resolve) => {
    sock.on('message', (msg, from) => {
      if (msg.readUInt16BE(0) !== 3 || msg.readUInt16BE(2) !== (expect & 0xffff)) return;
      parts.push(Buffer.from(msg.subarray(4)));
      const last = msg.length - 4 < blksize;
      if (last || expect % windowsize === 0) sock.send(ack(expect), from.port, from.address);
      expect++;
      if (last) resolve(Buffer.concat(parts));
    });
  });
}

async function serveOnLoopback(t: { teardown(fn: () => void): void }, wrap: (s: dgram.Socket) => dgram.Socket): Promise<{ got: Buffer; file: Buffer; direct: boolean; outcome: string }> {
  const bind = async (s: dgram.Socket): Promise<dgram.Socket> => { await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r())); return s; };
  const clientSock = await bind(dgram.createSocket('udp4'));
  const server = await bind(dgram.createSocket('udp4'));
  const stranger = await bind(dgram.createSocket('udp4'));
  await new Promise<void>((r) => server.connect(clientSock.address().port, '127.0.0.1', () => r()));
  t.teardown(() => { clientSock.close(); });
  const blksize = 1024;
  const windowsize = 4;
  const file = fileBytes(blksize * 300 + 17);
  const core = new Transfer({ size: file.length, blksize, windowsize, timeoutMs: 1000, retries: 5, idleTimeoutMs: 60_000, oack: false });
  let ended: (o: string) => void = () => undefined;
  const end = new Promise<string>((r) => { ended = r; });
  const transfer = new ActiveTransfer(host(ended), 1, { peer: wrap(server), stranger }, { address: '127.0.0.1', port: clientSock.address().port }, core, new BufferSource(file), [], 'f', 'f', client);
  const got = download(clientSock, blksize, windowsize);
  transfer.begin();
  return { got: await got, file, direct: transfer.direct, outcome: await end };
}

t.test('a whole file over loopback, straight through the connected socket\'s handle', async (t) => {
  const r = await serveOnLoopback(t, (s) => s);
  t.ok(r.direct, 'through the handle');
  t.ok(r.got.equals(r.file), 'the file arrives whole');
  t.equal(r.outcome, 'done');
});

t.test('a whole file over loopback through dgram, where the socket shows no handle shapes', async (t) => {
  // The connected socket seen as another Node would give it: no internal state, only dgram's calls.
  const plain = (s: dgram.Socket): dgram.Socket => ({
    on: (...a: Parameters<dgram.Socket['on']>) => s.on(...a),
    send: (...a: unknown[]) => (s.send as (...x: unknown[]) => void)(...a),
    close: () => s.close(),
  }) as unknown as dgram.Socket;
  const r = await serveOnLoopback(t, plain);
  t.notOk(r.direct, 'through dgram');
  t.ok(r.got.equals(r.file), 'the file arrives whole');
  t.equal(r.outcome, 'done');
});

// A requested name is one character per octet: 0x9b is U+009B, a CSI to many terminals, which JSON's
// escaping leaves raw; the name goes into log lines and lanctl output.
t.test('a requested name is logged with every control character escaped, C1 and DEL too', async (t) => {
  const name = Buffer.from([0x1b, 0x5b, 0x32, 0x4a, 0x9b, 0x32, 0x4a, 0x7f, 0x07, 0x61, 0x2f, 0xe9]).toString('latin1');
  const shown = printable(name);
  t.notMatch(shown, /[\u0000-\u001f\u007f-\u009f]/, 'no control character left');
  t.equal(shown, '\\u001b[2J\\u009b2J\\u007f\\u0007a/\u00e9', 'each one escaped, other characters as they are');
});
