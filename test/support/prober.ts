import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Lab, LabHost } from './netns.js';

// A LAN client's view of a failover: one process in a client namespace sends a DNS query, an NTP
// request, a TFTP read of who.txt and a DHCPINFORM (from the client's own address, MACs taken in
// turn from 64 so per-MAC rate limits never bite) to the VIP every `everyMs` (each probe on its own
// socket, never waiting for the one before; DHCP shares port 68 and matches by xid), and prints
// one line per answer:
//   ok <protocol> <sent at, CLOCK_MONOTONIC ms> <round trip ms> <who answered (TFTP: the file)>
// The parent reads the lines and computes gaps on the same clock (process.hrtime). Packets are
// built here by hand so the probe does not share lanha's codecs. Run as a script by startProber().
// The `echo` protocol is a datagram to a UDP echo responder (startEchoResponder, this script with
// `--echo-serve`) on the VIP's holder: the one probe that means the same for lanha and for another
// VIP stack (keepalived) in front of a service, so bench:failover compares VIP gaps with it.

export type Protocol = 'dns' | 'ntp' | 'tftp' | 'dhcp' | 'echo';

export interface ProbeAnswer {
  protocol: Protocol;
  sentAt: number;
  rttMs: number;
  who: string;
}

/** CLOCK_MONOTONIC in ms: the same clock in every process on this machine (outside time namespaces). */
export function monotonicNowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function dnsQuery(id: number, name: string): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'ascii')]);
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** DHCPINFORM (RFC 2131 §3.4) from `from`, chaddr 02:70:00:00:00:<n>. */
function dhcpInform(xid: number, from: string, n: number): Buffer {
  const b = Buffer.alloc(244);
  b[0] = 1; b[1] = 1; b[2] = 6;
  b.writeUInt32BE(xid, 4);
  from.split('.').forEach((o, i) => { b[12 + i] = Number(o); });
  Buffer.from([2, 0x70, 0, 0, 0, n]).copy(b, 28);
  b.writeUInt32BE(0x63825363, 236);
  b[240] = 53; b[241] = 1; b[242] = 8; b[243] = 255;
  return b;
}

/** One socket on port 68 for every DHCP probe; answers are matched to probes by xid. */
class DhcpProbes {
  #socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  #waiting = new Map<number, (who: string) => void>();
  #n = 0;
  constructor() {
    this.#socket.on('message', (msg, rinfo) => {
      if (msg.length < 244 || msg[0] !== 2) return;
      const done = this.#waiting.get(msg.readUInt32BE(4));
      if (done) done(rinfo.address);
    });
    this.#socket.on('error', () => undefined);
    this.#socket.bind(68);
  }
  probe(target: string, from: string, timeoutMs: number, onAnswer: (a: ProbeAnswer) => void): void {
    const xid = Math.floor(Math.random() * 0xffffffff) >>> 0;
    const sentAt = monotonicNowMs();
    const timer = setTimeout(() => this.#waiting.delete(xid), timeoutMs);
    this.#waiting.set(xid, (who) => {
      clearTimeout(timer);
      this.#waiting.delete(xid);
      onAnswer({ protocol: 'dhcp', sentAt, rttMs: monotonicNowMs() - sentAt, who });
    });
    this.#socket.send(dhcpInform(xid, from, this.#n++ % 64), 67, target);
  }
  close(): void { try { this.#socket.close(); } catch { /* closed */ } }
}

function probeOnce(protocol: Protocol, target: string, name: string, timeoutMs: number, onAnswer: (a: ProbeAnswer) => void, echoPort = 0): void {
  const socket = dgram.createSocket('udp4');
  const sentAt = monotonicNowMs();
  const id = Math.floor(Math.random() * 65536);
  let finished = false;
  const done = (who: string | null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    try { socket.close(); } catch { /* closed */ }
    if (who !== null) onAnswer({ protocol, sentAt, rttMs: monotonicNowMs() - sentAt, who });
  };
  const timer = setTimeout(() => done(null), timeoutMs);
  socket.on('error', () => done(null));
  socket.on('message', (msg, rinfo) => {
    if (protocol === 'echo') {
      // "<id> <who>": our id back, and the responder's name.
      const [gotId, who] = msg.toString('latin1').split(' ');
      if (gotId === String(id)) done(who ?? rinfo.address);
    } else if (protocol === 'dns') {
      // Our id, a response (QR), NOERROR, at least one answer.
      if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg[2]! & 0x80) !== 0 && (msg[3]! & 0x0f) === 0 && msg.readUInt16BE(6) > 0) done(rinfo.address);
    } else if (protocol === 'ntp') {
      if (msg.length >= 48 && (msg[0]! & 0x07) === 4) done(rinfo.address);
    } else if (msg.length >= 4 && msg.readUInt16BE(0) === 3 && msg.readUInt16BE(2) === 1) {
      // ACK 1 ends a one-block file. Close only once it is sent: an ACK lost to an early close left
      // the server's transfer waiting a retransmit interval, and four such transfers from this
      // address filled tftp.perClientTransfers, so later probes were dropped (a false ~1 s gap).
      const who = msg.subarray(4).toString('utf8').trim();
      clearTimeout(timer);
      socket.send(Buffer.from([0, 4, 0, 1]), rinfo.port, rinfo.address, () => done(who));
    } else if (msg.length >= 4 && msg.readUInt16BE(0) === 5) {
      done(null);
    }
  });
  const packet = protocol === 'echo' ? Buffer.from(String(id), 'latin1')
    : protocol === 'dns' ? dnsQuery(id, name)
      : protocol === 'ntp' ? Buffer.concat([Buffer.from([0x23]), Buffer.alloc(47)])
        : Buffer.from('\u0000\u0001who.txt\u0000octet\u0000', 'latin1');
  socket.send(packet, protocol === 'echo' ? echoPort : protocol === 'dns' ? 53 : protocol === 'ntp' ? 123 : 69, target);
}

/** The script side of startEchoResponder: answers "<first word> <who>" to every datagram on `port`. */
function echoServe(who: string, port: number): void {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => { socket.send(`${msg.toString('latin1').split(' ')[0]} ${who}`, rinfo.port, rinfo.address); });
  socket.on('error', () => undefined);
  socket.bind(port);
}

/** The script side: probe until stdin closes. argv: target everyMs name protocols(comma list) [own address]. */
function main(): void {
  if (process.argv[2] === '--echo-serve') { echoServe(process.argv[3]!, Number(process.argv[4])); return; }
  const [target, everyArg, name, list, from, echoPortArg] = process.argv.slice(2);
  const everyMs = Number(everyArg);
  const protocols = (list ?? 'dns').split(',') as Protocol[];
  const write = (a: ProbeAnswer): void => { process.stdout.write(`ok ${a.protocol} ${a.sentAt.toFixed(1)} ${a.rttMs.toFixed(1)} ${a.who}\n`); };
  const dhcp = protocols.includes('dhcp') && from !== undefined ? new DhcpProbes() : null;
  const timer = setInterval(() => {
    for (const p of protocols) {
      if (p === 'dhcp') dhcp?.probe(target!, from!, 1000, write);
      else probeOnce(p, target!, name!, 1000, write, Number(echoPortArg ?? 0));
    }
  }, everyMs);
  process.stdin.on('end', () => { clearInterval(timer); setTimeout(() => { dhcp?.close(); process.exit(0); }, 1100); });
  process.stdin.resume();
}

export interface Prober {
  readonly everyMs: number;
  readonly answers: ProbeAnswer[];
  stop(): Promise<void>;
}

/** Starts the prober in `host` (tracked by the lab); answers accumulate until stop(). */
export function startProber(lab: Lab, host: LabHost, options: { target: string; everyMs: number; name?: string; protocols: readonly Protocol[]; echoPort?: number }): Prober {
  const script = fileURLToPath(import.meta.url);
  const child: ChildProcess = lab.track(spawn('ip', ['netns', 'exec', host.ns, process.execPath, script, options.target, String(options.everyMs), options.name ?? 'www.lab.test', options.protocols.join(','), host.address ?? '', String(options.echoPort ?? 0)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const answers: ProbeAnswer[] = [];
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      const [ok, protocol, sentAt, rtt, ...who] = line.split(' ');
      if (ok === 'ok') answers.push({ protocol: protocol as Protocol, sentAt: Number(sentAt), rttMs: Number(rtt), who: who.join(' ') });
    }
  });
  return {
    everyMs: options.everyMs,
    answers,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) { resolve(); return; }
      child.once('exit', () => resolve());
      child.stdin!.end();
    }),
  };
}

/**
 * A UDP echo responder in `host` on `port` (all addresses) answering with `who`: the service behind
 * a VIP for the `echo` probe. Tracked by the lab; signal or stop it by its ChildProcess.
 */
export function startEchoResponder(lab: Lab, host: LabHost, who: string, port: number): ChildProcess {
  return lab.track(spawn('ip', ['netns', 'exec', host.ns, process.execPath, fileURLToPath(import.meta.url), '--echo-serve', who, String(port)], { stdio: 'ignore' }));
}

/**
 * The longest silence for one protocol between `from` and `to` (monotonic ms): the largest
 * distance between the send times of consecutive answered probes, less one probe interval (a
 * probe every interval with no loss counts as no gap). 0 when nothing was missed.
 */
export function longestGapMs(answers: readonly ProbeAnswer[], protocol: Protocol, everyMs: number, from: number, to: number): number {
  const times = answers.filter((a) => a.protocol === protocol).map((a) => a.sentAt).sort((x, y) => x - y);
  let longest = 0;
  for (let i = 1; i < times.length; i++) {
    if (times[i]! < from || times[i - 1]! > to) continue;
    longest = Math.max(longest, times[i]! - times[i - 1]! - everyMs);
  }
  return Math.max(0, Math.round(longest));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
