// bench:tftp helper: one lock-step download (RRQ with blksize), timing every ACK -> next DATA round
// trip as the client sees it, so lanha's turnaround can be set beside tftpd-hpa's with the same
// client. Not a test; loopback only.
//   node dist/bench/tftp-rtt.js HOST PORT FILE BLKSIZE
// Prints: `RTT <blocks> <bytes> <seconds> <p50_us> <p90_us> <p99_us>` (or `RTT FAIL <why>`).
import dgram from 'node:dgram';

const [host = '127.0.0.1', portText = '69', file = '', blksizeText = '1468'] = process.argv.slice(2);
const blksize = Number(blksizeText);
const socket = dgram.createSocket('udp4');
const rtts: number[] = [];
let bytes = 0;
let expected = 1;
let sentAt = 0;
let started = 0;
let peerPort = 0;

const ack = (block: number, port: number): void => {
  const b = Buffer.from([0, 4, (block >> 8) & 0xff, block & 0xff]);
  sentAt = performance.now();
  socket.send(b, port, host);
};
const fail = (why: string): void => { console.log(`RTT FAIL ${why}`); socket.close(); process.exitCode = 1; };
const timer = setTimeout(() => fail('timed out'), 120_000);

socket.on('message', (msg, rinfo) => {
  const now = performance.now();
  const op = msg.readUInt16BE(0);
  if (peerPort === 0) peerPort = rinfo.port;
  if (op === 6) { ack(0, peerPort); return; } // OACK
  if (op === 5) { fail(`ERROR ${msg.readUInt16BE(2)} ${msg.subarray(4, msg.length - 1).toString()}`); return; }
  if (op !== 3) return;
  const block = msg.readUInt16BE(2);
  if (block !== (expected & 0xffff)) { ack(block, peerPort); return; }
  if (expected > 1) rtts.push(now - sentAt);
  bytes += msg.length - 4;
  expected++;
  ack(block, peerPort);
  if (msg.length - 4 < blksize) {
    clearTimeout(timer);
    const seconds = (performance.now() - started) / 1000;
    rtts.sort((a, b) => a - b);
    const at = (q: number): string => ((rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * q))] ?? 0) * 1000).toFixed(1);
    console.log(`RTT ${expected - 1} ${bytes} ${seconds.toFixed(3)} ${at(0.5)} ${at(0.9)} ${at(0.99)}`);
    socket.close();
  }
});
socket.bind(0, '127.0.0.1', () => {
  started = performance.now();
  const rrq = Buffer.concat([Buffer.from([0, 1]), Buffer.from(`${file}\0octet\0blksize\0${blksize}\0`)]);
  socket.send(rrq, Number(portText), host);
});
