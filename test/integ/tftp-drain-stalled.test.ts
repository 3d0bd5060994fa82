import t from 'tap';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from '../../services/tftp/server.js';
import { tftpConfig } from '../../services/tftp/config.js';
import { decodePacket, encodeAck, encodeRequest } from '../../services/tftp/wire.js';
import { failover, type FailoverResult } from '../../services/vip/failover.js';
import type { RunningService } from '../../services/contract.js';
import type { StateLog, StateLogStatus } from '../../cluster/state-log.js';
import { Fsm } from '../../cluster/fsm.js';
import { parseConfig } from '../../config/index.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { failoverTestConfig } from '../support/failover-config.js';

// A planned failover does not wait for a TFTP transfer whose client stopped ACKing (it would live
// timeout x retries on the server), while a live transfer running beside it still finishes before
// the VIP goes. The real TFTP server (worker thread, and on the main thread) on 127.0.0.1 with two
// raw clients: one ACKs every block a little slowly, one ACKs two blocks and goes silent. The
// failover runs the real drain against a scripted Raft leader. Proven: the failover ends once the
// live download is complete (every byte, no ERROR), the stalled transfer is named, gets the
// hand-over ERROR and ends as cancelled, not by its own timeout; and inFlight() marks it stalled
// (and only it). Loopback only; no root needed.

const CONFIG = failoverTestConfig('5m');

/** A leader whose target is caught up and takes over at once. */
class Leader implements StateLog {
  readonly fsm = new Fsm();
  role: 'leader' | 'follower' = 'leader';
  leader = 'lan-a';
  isLeader(): boolean { return this.role === 'leader'; }
  async propose(): Promise<never> { throw new Error('not used'); }
  status(): StateLogStatus {
    return { mode: 'cluster', role: this.role, leader: this.leader, term: 3, commitIndex: 5, appliedIndex: 5, lastIndex: 5, progress: { 'lan-b': { match: 5 }, witness: { match: 5 } } };
  }
  transferLeadership(to: string): boolean { this.role = 'follower'; this.leader = to; return true; }
  async close(): Promise<void> { /* nothing */ }
}

interface Download { bytes: number; errors: string[]; done: Promise<void>; socket: dgram.Socket }

/** A raw octet client: ACKs each DATA after `delayMs`, or stops ACKing after `stopAfter` blocks. */
async function download(port: number, file: string, delayMs: number, stopAfter = Infinity): Promise<Download> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  const d: Download = { bytes: 0, errors: [], socket, done: Promise.resolve() };
  let last = 0;
  d.done = new Promise<void>((finish) => {
    socket.on('message', (msg, rinfo) => {
      const p = decodePacket(msg);
      if (!p.ok) return;
      if (p.value.op === 'error') { d.errors.push(p.value.message); finish(); return; }
      if (p.value.op !== 'data') return;
      const { block, data } = p.value;
      if (block === ((last + 1) & 0xffff)) { last++; d.bytes += data.length; }
      if (last > stopAfter) return; // gone: no more ACKs
      const ack = (): void => { socket.send(encodeAck(block), rinfo.port, rinfo.address); };
      if (delayMs > 0) setTimeout(ack, delayMs); else ack();
      if (data.length < 512) finish();
    });
  });
  socket.send(encodeRequest('rrq', file, 'octet'), port, '127.0.0.1');
  return d;
}

for (const workers of [1, 0]) {
  t.test(`failover drain with a stalled and a live transfer (tftp workers: ${workers})`, async (t) => {
    const top = mkdtempSync(join(tmpdir(), 'lanha-drain-'));
    const root = join(top, 'root');
    mkdirSync(root);
    const image = randomBytes(512 * 300 + 7);
    writeFileSync(join(root, 'Image'), image);
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => { lines.push(l); return true; } } });
    // The default 1 s retransmit timeout and 5 retries: the stalled transfer would live 1+2+4+8+8+8 = 31 s
    // on the server; it counts as stalled after 2 s without an ACK.
    const config = { ...tftpConfig.parse({ root }), port: 0, workers };
    const server = new TftpServer({ config, addresses: ['127.0.0.1'], log, clock: systemClock });
    await server.start();
    const clients: dgram.Socket[] = [];
    t.teardown(async () => { for (const c of clients) c.close(); await server.stop(); rmSync(top, { recursive: true, force: true }); });
    const tftp: RunningService = {
      name: 'tftp', status: () => server.status(), stop: () => server.stop(),
      inFlight: () => server.inFlight(), handOver: async () => { server.cancelAll('server handing over to its partner; retry'); },
    };

    const stalled = await download(server.port(), 'Image', 0, 2);
    // 301 blocks, each ACKed 15 ms late: a live download of several seconds.
    const live = await download(server.port(), 'Image', 15);
    clients.push(stalled.socket, live.socket);
    // Until the stalled client's silence reaches two retransmit intervals, both count as live.
    let view = server.inFlight();
    for (let i = 0; i < 500 && !view.some((w) => w.stalled); i++) { await new Promise((r) => setTimeout(r, 20)); view = server.inFlight(); }
    t.equal(view.length, 2, 'two transfers in flight');
    t.equal(view.filter((w) => w.stalled).length, 1, `one of them is stalled: ${view.map((w) => w.line).join('; ')}`);
    t.match(view.find((w) => w.stalled)?.line, /no ACK for [0-9.]+ s/, 'its line says how long the client has been silent');
    t.ok(live.bytes < image.length, 'the live download is still running when the failover starts');

    const state = new Leader();
    const vip = { holdOff: async () => { released = live.bytes; }, resume: () => undefined };
    let released = -1;
    const r = await failover({ vip, state, config: parseConfig(CONFIG), clock: systemClock, log, services: () => [tftp], catchUpWaitMs: 200, newLeaderWaitMs: 300, takeoverWaitMs: 50 }, 'lan-b');
    t.equal(r.status, 200, JSON.stringify(r.body));
    const body = r.body as FailoverResult;
    t.same(body.drainLeft, [], 'every live transfer finished inside the drain');
    t.equal(body.drainStalled.length, 1, `the stalled one was not waited for: ${body.drainStalled.join('; ')}`);
    t.match(body.drainStalled[0], /^tftp 127\.0\.0\.1:\d+ Image for [0-9.]+ s \(no ACK for/);
    await live.done;
    t.equal(released, image.length, 'the VIP went only after the live download was complete');
    t.equal(live.bytes, image.length, 'the live client got every byte');
    t.same(live.errors, [], 'and no ERROR');
    await Promise.race([stalled.done, new Promise((r) => setTimeout(r, 2000))]);
    t.same(stalled.errors, ['server handing over to its partner; retry'], 'the silent client got the hand-over ERROR');
    for (let i = 0; i < 100 && server.inFlight().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const ended = lines.map((l) => JSON.parse(l) as { event?: string; outcome?: string; bytes?: number }).filter((l) => l.event === 'tftp.transfer.failed');
    t.same(ended.map((l) => l.outcome), ['cancelled'], 'the stalled transfer ended by the hand-over, not by its own timeout');
  });
}
