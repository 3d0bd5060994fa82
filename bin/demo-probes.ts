import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { formatIpv4, ipv4FromBytes } from '../lib/ipv4.js';
import { decodeMessage, emptyMessage, encodeMessage, rdataName, typeName, CLASS_IN, RCODE } from '../services/dns/wire.js';
import { decodePacket, encodeAck, encodeRequest } from '../services/tftp/wire.js';

// Built-in clients for `lanctl demo` on loopback, where a real client may be missing: one DNS
// query, one TFTP read, one NTP request. Each resolves with what it got or rejects with why.

async function exchange(socket: Socket, send: Uint8Array, port: number, host: string, timeoutMs: number, accept: (m: Buffer) => boolean): Promise<Buffer & { from: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.off('message', on); reject(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)); }, timeoutMs);
    const on = (m: Buffer, rinfo: { port: number }): void => { if (accept(m)) { clearTimeout(timer); socket.off('message', on); resolve(Object.assign(m, { from: rinfo.port })); } };
    socket.on('message', on);
    socket.send(send, port, host, (e) => { if (e) { clearTimeout(timer); socket.off('message', on); reject(e); } });
  });
}

async function udp<T>(body: (s: Socket) => Promise<T>): Promise<T> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, () => resolve()));
  try { return await body(s); } finally { s.close(); }
}

/** One DNS question; the answers as "TYPE data" lines and the rcode. */
export async function dnsQuery(host: string, port: number, name: string, type: number, timeoutMs = 2000): Promise<{ rcode: string; answers: string[] }> {
  return udp(async (s) => {
    const q = emptyMessage(randomInt(1, 0xffff));
    q.rd = true;
    q.questions.push({ name, type, class: CLASS_IN });
    const bytes = await exchange(s, encodeMessage(q).bytes, port, host, timeoutMs, (m) => m.length >= 2 && m.readUInt16BE(0) === q.id);
    const d = decodeMessage(bytes);
    if (!d.ok) throw new Error(`undecodable DNS answer (${d.error.code})`);
    const rcode = Object.entries(RCODE).find(([, v]) => v === d.value.rcode)?.[0] ?? String(d.value.rcode);
    const answers = d.value.answers.map((a) => `${typeName(a.type)} ${a.type === 1 && a.rdata.length === 4 ? formatIpv4(ipv4FromBytes(a.rdata)) : a.type === 12 || a.type === 5 ? rdataName(a.rdata, 0)?.name ?? '?' : `${a.rdata.length} bytes`}`);
    return { rcode, answers };
  });
}

/** Reads a small file (one to a few blocks) over TFTP. */
export async function tftpGet(host: string, port: number, file: string, timeoutMs = 2000): Promise<Buffer> {
  return udp(async (s) => {
    const chunks: Buffer[] = [];
    let block = 1;
    let peerPort = port;
    let request: Uint8Array = encodeRequest('rrq', file, 'octet');
    for (;;) {
      const m = await exchange(s, request, peerPort, host, timeoutMs, () => true);
      const p = decodePacket(m);
      if (!p.ok) throw new Error('undecodable TFTP packet');
      if (p.value.op === 'error') throw new Error(`TFTP error ${p.value.code}: ${p.value.message}`);
      if (p.value.op !== 'data' || p.value.block !== (block & 0xffff)) continue;
      peerPort = m.from; // the transfer's own port (RFC 1350 §4 TID)
      chunks.push(Buffer.from(p.value.data));
      if (p.value.data.length < 512) {
        s.send(encodeAck(block), peerPort, host);
        return Buffer.concat(chunks);
      }
      request = encodeAck(block);
      block++;
      if (block > 64) throw new Error('file too large for the demo probe');
    }
  });
}

/** One NTP client request (mode 3); the server's stratum, leap and offset estimate. */
export async function ntpQuery(host: string, port: number, timeoutMs = 2000): Promise<{ stratum: number; leap: number; offsetMs: number }> {
  return udp(async (s) => {
    const req = Buffer.alloc(48);
    req[0] = (0 << 6) | (4 << 3) | 3;
    const t1 = Date.now();
    const ntpSeconds = Math.floor(t1 / 1000) + 2_208_988_800;
    req.writeUInt32BE(ntpSeconds >>> 0, 40);
    req.writeUInt32BE(Math.floor(((t1 % 1000) / 1000) * 2 ** 32) >>> 0, 44);
    const m = await exchange(s, req, port, host, timeoutMs, (b) => b.length >= 48 && b.readUInt32BE(24) === req.readUInt32BE(40));
    const t4 = Date.now();
    const ts = (o: number): number => (m.readUInt32BE(o) - 2_208_988_800) * 1000 + (m.readUInt32BE(o + 4) / 2 ** 32) * 1000;
    const t2 = ts(32), t3 = ts(40);
    return { stratum: m[1]!, leap: m[0]! >> 6, offsetMs: Math.round(((t2 - t1) + (t3 - t4)) / 2 * 1000) / 1000 };
  });
}
