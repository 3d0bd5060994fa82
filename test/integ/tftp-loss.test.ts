import t from 'tap';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from '../../services/tftp/server.js';
import { tftpConfig } from '../../services/tftp/config.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { seededRandom, type Random } from '../../lib/random.js';
import { seedFromEnv } from '../support/seeded.js';
import { which } from '../support/netns.js';

// Loss, reordering and duplication between real clients and lanha's TFTP, on loopback. This
// kernel has no netem, so a user-space relay sits in the path: it drops 5 % of the datagrams each
// way, duplicates 5 % and holds 10 % back for a few ms (reordering them), from a seeded random.
// Every transfer must complete with the right checksum, and duplicated ACKs must cause no resend storm.

interface Impairment { loss: number; duplicate: number; reorder: number; holdMs: number }

/**
 * A TFTP-aware UDP relay: the client talks to `port`; per client endpoint an upstream socket talks
 * to the server, and per server TID a downstream socket gives the client a TID of its own.
 */
class LossyRelay {
  readonly front = dgram.createSocket('udp4');
  #upstream = new Map<string, Promise<dgram.Socket>>();
  #downstream = new Map<string, Promise<dgram.Socket>>();
  #sockets: dgram.Socket[] = [];
  #timers = new Set<NodeJS.Timeout>();
  stats = { forwarded: 0, dropped: 0, duplicated: 0, held: 0 };

  constructor(readonly serverPort: number, readonly random: Random, readonly impair: Impairment) {}

  async start(): Promise<number> {
    await new Promise<void>((ok) => this.front.bind(0, '127.0.0.1', ok));
    this.front.on('message', (msg, from) => this.#toServer(msg, from.port, this.serverPort));
    return this.front.address().port;
  }

  async #socket(): Promise<dgram.Socket> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((ok) => s.bind(0, '127.0.0.1', ok));
    this.#sockets.push(s);
    return s;
  }

  // Sockets are made once per key; the map holds the promise so a burst cannot make two.
  #toServer(msg: Buffer, clientPort: number, serverPort: number): void {
    let up = this.#upstream.get(String(clientPort));
    if (!up) {
      up = this.#socket().then((upstream) => {
        upstream.on('message', (reply, from) => this.#toClient(reply, clientPort, from.port, upstream));
        return upstream;
      });
      this.#upstream.set(String(clientPort), up);
    }
    void up.then((upstream) => this.#impaired(upstream, msg, serverPort));
  }

  #toClient(msg: Buffer, clientPort: number, serverTid: number, up: dgram.Socket): void {
    const key = `${clientPort}>${serverTid}`;
    let down = this.#downstream.get(key);
    if (!down) {
      down = this.#socket().then((downstream) => {
        downstream.on('message', (ack) => this.#impaired(up, ack, serverTid));
        return downstream;
      });
      this.#downstream.set(key, down);
    }
    void down.then((downstream) => this.#impaired(downstream, msg, clientPort));
  }

  #impaired(via: dgram.Socket, msg: Buffer, port: number): void {
    const r = this.random;
    // atftp 0.8 aborts a transfer when an OACK comes twice ("unexpected OACK"), which is what a
    // server must do when the OACK or the ACK 0 is lost: the option handshake passes clean, the
    // impairments start with the data.
    const handshake = msg.length >= 2 && msg[0] === 0 && (msg[1] === 6 || (msg[1] === 4 && msg.length === 4 && msg[2] === 0 && msg[3] === 0));
    if (handshake) { this.#send(via, msg, port); return; }
    if (r.float() < this.impair.loss) { this.stats.dropped++; return; }
    const copies = r.float() < this.impair.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (r.float() < this.impair.reorder) {
        this.stats.held++;
        const timer = setTimeout(() => { this.#timers.delete(timer); this.#send(via, msg, port); }, 1 + r.int(this.impair.holdMs));
        this.#timers.add(timer);
      } else this.#send(via, msg, port);
    }
  }

  #send(via: dgram.Socket, msg: Buffer, port: number): void {
    this.stats.forwarded++;
    try { via.send(msg, port, '127.0.0.1'); } catch { /* closed at the end */ }
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const s of [this.front, ...this.#sockets]) { try { s.close(); } catch { /* closed */ } }
  }
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function run(argv: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 60_000 }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`.trim()));
  });
}

t.test('transfers complete through 5 % loss, reordering and duplication', async (t) => {
  const missing = ['curl', 'tftp', 'atftp'].filter((tool) => !which(tool));
  if (missing.length > 0) {
    if (process.env['CI'] === 'true') t.fail(`CI must run this test but cannot: missing ${missing.join(', ')}`);
    else { process.stderr.write(`\n*** SKIPPED tftp loss test: missing ${missing.join(', ')}\n`); t.comment('SKIPPED'); t.pass('skipped'); }
    return;
  }
  const top = mkdtempSync(join(tmpdir(), 'lanha-tftp-loss-'));
  chmodSync(top, 0o755);
  const root = join(top, 'root');
  mkdirSync(root);
  const payload = randomBytes(96 * 1024 + 333);
  const exact = randomBytes(1468 * 48);
  writeFileSync(join(root, 'initrd.bin'), payload, { mode: 0o644 });
  writeFileSync(join(root, 'exact.bin'), exact, { mode: 0o644 });
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(s); } } });
  const server = new TftpServer({ config: { ...tftpConfig.parse({ root, timeout: '150ms', retries: 12 }), port: 0 }, addresses: ['127.0.0.1'], log, clock: systemClock });
  await server.start();
  const seed = seedFromEnv(7);
  const relay = new LossyRelay(server.port(), seededRandom(seed), { loss: 0.05, duplicate: 0.05, reorder: 0.1, holdMs: 6 });
  const port = await relay.start();
  t.teardown(async () => { relay.close(); await server.stop(); rmSync(top, { recursive: true, force: true }); });

  const url = (f: string): string => `tftp://127.0.0.1:${port}/${f}`;
  const fetches: Array<[string, (out: string) => string[], Buffer]> = [
    ['curl blksize 1468', (o) => ['curl', '-sS', '--tftp-blksize', '1468', '-o', o, url('initrd.bin')], payload],
    ['curl blksize 512, exact multiple', (o) => ['curl', '-sS', '--tftp-blksize', '512', '-o', o, url('exact.bin')], exact],
    ['curl without options', (o) => ['curl', '-sS', '--tftp-no-options', '-o', o, url('initrd.bin')], payload],
    ['tftp-hpa', (o) => ['tftp', '-m', 'octet', '127.0.0.1', String(port), '-c', 'get', 'initrd.bin', o], payload],
    // atftp 0.8's windowed receiver restarts its own timer on every packet, old ones included, and
    // re-ACKs only on that timer: when its window-end ACK is lost and the server keeps resending
    // the (old) window more often than atftp's timeout, neither side moves. Production back-off
    // (1 s doubling to 8 s) outgrows atftp's 5 s default; this test's fast 150 ms timer (capped at
    // 1.2 s) needs atftp's timeout at 1 s to leave it room.
    ...[4, 8, 16].map((w): [string, (o: string) => string[], Buffer] => [`atftp windowsize ${w}`, (o) => ['atftp', '--option', 'blksize 1468', '--option', `windowsize ${w}`, '--option', 'timeout 1', '-g', '-r', 'initrd.bin', '-l', o, '127.0.0.1', String(port)], payload]),
    ['atftp windowsize 8, exact multiple', (o) => ['atftp', '--option', 'blksize 1468', '--option', 'windowsize 8', '--option', 'timeout 1', '-g', '-r', 'exact.bin', '-l', o, '127.0.0.1', String(port)], exact],
  ];
  let n = 0;
  let attempts = 0;
  for (const [label, argv, want] of fetches) {
    // atftp's windowed receiver can still stall on a lost window-end ACK (see above); a firmware
    // would request again, and so may this test, once.
    const tries = label.startsWith('atftp') ? 2 : 1;
    let got = 'missing';
    let said = '';
    for (let i = 0; i < tries && got !== sha(want); i++) {
      const out = join(top, `out-${n++}`);
      attempts++;
      said = await run(argv(out));
      try { got = sha(readFileSync(out)); } catch { /* stays missing */ }
    }
    t.equal(got, sha(want), `${label}: checksum matches (seed ${seed}) ${said.slice(-160)}`);
  }
  t.ok(relay.stats.dropped > 0 && relay.stats.duplicated > 0 && relay.stats.held > 0, `the relay did impair: ${JSON.stringify(relay.stats)}`);
  await new Promise((r) => setTimeout(r, 300)); // the last ACK of the last client, still on its way
  const ended = lines.map((l) => JSON.parse(l) as { event: string; size: number; blksize: number; windowsize: number; retransmits: number; bytes: number })
    .filter((l) => l.event === 'tftp.transfer.done' || l.event === 'tftp.transfer.failed');
  // A lock-step client whose last ACK is lost is gone when the server retries: that transfer may
  // still be retrying (or end as failed) although the client has every byte.
  t.equal(ended.length + server.activeTransfers, attempts, 'every transfer accounted for');
  for (const line of ended) {
    const blocks = Math.floor(line.size / line.blksize) + 1;
    // A resend storm grows without bound (the npm tftp package: 4,096 DATA for 65 blocks with
    // duplicated ACKs); recovery here stays under one window per block.
    t.ok(line.retransmits <= blocks * line.windowsize, `windowsize ${line.windowsize}: ${line.retransmits} retransmits for ${blocks} blocks (${line.event})`);
  }
});
