// bench:tftp helper: the least a TFTP server on Node's dgram can do per block, as the floor lanha
// is measured against. Lock-step reads only (windowsize 1), one connected socket per transfer,
// every file of ROOT read into memory at start, a block copied into one reused packet and sent
// from the ACK's callback; no timers, no retransmission, no limits, no confinement beyond ROOT's
// top level. Not a server to use: loopback, bench only.
//   node dist/bench/tftp-floor.js PORT ROOT
// Prints `FLOOR ready` once listening.
import dgram from 'node:dgram';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dataPacket, decodePacket, encodeError, encodeOack, ErrorCode, type TftpOption } from '../services/tftp/wire.js';

const [portText = '0', root = '.'] = process.argv.slice(2);
const files = new Map<string, Buffer>();
for (const name of readdirSync(root)) {
  const path = join(root, name);
  if (statSync(path).isFile()) files.set(name, readFileSync(path));
}

const listener = dgram.createSocket('udp4');
listener.on('message', (msg, rinfo) => {
  const decoded = decodePacket(msg);
  if (!decoded.ok || decoded.value.op !== 'rrq') return;
  const request = decoded.value;
  const bytes = files.get(request.filename);
  if (bytes === undefined) {
    listener.send(encodeError(ErrorCode.fileNotFound, 'file not found'), rinfo.port, rinfo.address);
    return;
  }
  let blksize = 512;
  const oack: TftpOption[] = [];
  for (const { name, value } of request.options) {
    if (name === 'blksize' && /^[0-9]{1,5}$/.test(value)) {
      blksize = Math.min(1468, Math.max(8, Number(value)));
      oack.push({ name, value: String(blksize) });
    } else if (name === 'tsize') oack.push({ name, value: String(bytes.length) });
  }
  serve(bytes, blksize, oack, rinfo);
});
listener.on('error', (error) => { console.error(`FLOOR listener: ${String(error)}`); process.exitCode = 1; });
listener.bind(Number(portText), '127.0.0.1', () => console.log('FLOOR ready'));

function serve(bytes: Buffer, blksize: number, oack: TftpOption[], peer: dgram.RemoteInfo): void {
  const socket = dgram.createSocket('udp4');
  const packet = dataPacket(0, blksize);
  const last = Math.floor(bytes.length / blksize) + 1;
  let sent = 0;
  const send = (block: number): void => {
    const offset = (block - 1) * blksize;
    const length = Math.max(0, Math.min(blksize, bytes.length - offset));
    packet.writeUInt16BE(block & 0xffff, 2);
    bytes.copy(packet, 4, offset, offset + length);
    socket.send(length === blksize ? packet : packet.subarray(0, 4 + length));
    sent = block;
  };
  socket.on('message', (msg) => {
    if (msg.length < 4 || msg[0] !== 0 || msg[1] !== 4) return;
    const acked = (msg[2]! << 8) | msg[3]!;
    if (acked !== (sent & 0xffff)) return; // lock-step: only the ACK of the block just sent moves on
    if (sent >= last) { socket.close(); return; }
    send(sent + 1);
  });
  socket.on('error', () => socket.close());
  socket.bind(0, '127.0.0.1', () => socket.connect(peer.port, peer.address, () => {
    if (oack.length > 0) socket.send(encodeOack(oack)); // ACK 0 then starts block 1
    else send(1);
  }));
}
