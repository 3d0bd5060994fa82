import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import type { Clock } from '../../lib/clock.js';
import type { Counters } from '../../lib/counters.js';
import { DatagramSender, SEND_QUEUED, onDatagram } from '../../lib/udp-direct.js';
import type { TftpConfig } from './config.js';
import { dataPacket, decodePacket, encodeError, encodeOack, ErrorCode, type RequestPacket, type TftpOption } from './wire.js';
import { AckOutcome, negotiate, Transfer, type TransferEffect, type TransferEvent } from './transfer.js';
import { checkName, compileRemap, printable, remapCandidates, rootRelative, type ClientInfo, type RemapRule } from './paths.js';

export { printable };
import { BusyPoll, EpochEnd, TurnOutcome } from './busy-poll.js';
import { fdShortageCode } from '../../lib/fd-exhaustion.js';
import { BufferSource, CachedSource, openInRoot, releaseFile, toNetascii, type OpenedFile, type OpenRefusal, type Source } from './files.js';
import type { BlockCache } from './block-cache.js';

// Running transfers: open the file, negotiate, bind the TID, drive the pure core with socket
// events and timers. The server's main thread uses it directly, or runs it in worker threads
// (worker.ts) so a boot storm never holds up the event loop DHCP and DNS share. A transfer's ACKs
// come straight from its connected socket's handle and its DATA goes straight to it
// (lib/udp-direct.ts; dgram's events and send where this Node has other shapes).

/** netascii is converted in memory: refuse it for files bigger than this (kernels go octet). */
const NETASCII_BYTES_MAX = 16 << 20;
const EVENT_QUEUE_MAX = 256;
/**
 * Retransmissions of a transfer's first OACK or DATA while its client has acknowledged nothing
 * (TransferParams.unconfirmedRetries), at most tftp.retries: sent at 0, 1 and 3 s, given up at 7 s
 * with the default 1 s timeout instead of ~30 s. A spoofed source's RRQ then costs three packets
 * toward its victim and a slot for 7 s; a live client whose first packets were all lost re-sends its
 * RRQ, which starts afresh once this transfer is gone (it ends without an ERROR, which would make
 * firmware give up).
 */
const UNCONFIRMED_RETRIES = 2;
/**
 * One ACK in this many (per transfer) is timed from its arrival in JavaScript to its DATA's send
 * returning: counters tftp.turnaround.{samples,step_ns,copy_ns,send_ns}; bench:tftp prints them.
 */
const TURNAROUND_SAMPLE_MASK = 15;

export interface Peer {
  address: string;
  port: number;
}

export interface TransferInfo {
  client: string;
  file: string;
  requested: string;
  bytes: number;
  size: number;
  blksize: number;
  windowsize: number;
  ms: number;
  retransmits: number;
  /** Since the client last acknowledged something new. */
  idleMs: number;
  /** No ACK progress for two retransmit intervals: the client is likely gone (a planned failover does not wait for it). */
  stalled: boolean;
}

/** A running transfer's silence, as the main thread learns it from a worker. */
export interface IdleTime {
  id: number;
  idleMs: number;
  stallAfterMs: number;
}

/** What the engine needs from where it runs. */
export interface EngineHost {
  readonly clock: Clock;
  readonly counters: Counters;
  error(fields: Record<string, unknown>, message: string): void;
  transferEnded(transfer: ActiveTransfer, outcome: string): void;
  /** The client acknowledged something for the first time (Transfer.confirmed): told once per transfer. */
  transferConfirmed(transfer: ActiveTransfer): void;
}

/** A boot file rendered for one client (services/boot), served from memory. */
export interface RenderedFile {
  name: string;
  bytes: Uint8Array;
}

export type StartOutcome =
  | { kind: 'started' }
  | { kind: 'stopped' }
  | { kind: 'refused'; code: number; message: string; reason: string }
  /** Out of file descriptors for its file or its TID socket: not answered (the client's RRQ retry comes back), said by the server rate-limited. */
  | { kind: 'exhausted'; what: 'file' | 'socket'; code: string };

export class ActiveTransfer {
  readonly host: EngineHost;
  readonly id: number;
  readonly peer: Peer;
  readonly key: string;
  /** Connected to the peer: the kernel hands it only the peer's packets and sends without a route lookup. */
  readonly socket: dgram.Socket;
  /** Unconnected twin on the same port: it receives what comes from anyone else (wrong TIDs). */
  readonly stranger: dgram.Socket;
  /** Sends on `socket` (to the peer it is connected to). */
  readonly #sender: DatagramSender;
  readonly core: Transfer;
  readonly source: Source;
  readonly oack: TftpOption[];
  readonly file: string;
  readonly requested: string;
  readonly client: ClientInfo;
  readonly startedMs: number;
  #deadline = 0;
  #timer: NodeJS.Timeout | null = null;
  /** A file read is in progress: later events wait behind it so DATA leaves in order. */
  #waiting = false;
  #queue: TransferEvent[] = [];
  readonly #ring: Array<Buffer | undefined>;
  #closed = false;
  #acks = 0;
  /** The host was told the client acknowledged something (EngineHost.transferConfirmed). */
  #confirmed = false;
  /** This ACK is being timed: #apply adds its copy and send times. */
  #timing = false;
  #copyMs = 0;
  #sendMs = 0;
  /** Polls the loop for this transfer's next ACK (lock-step only; null: sleep in epoll as usual). */
  readonly #poller: LoopPoller | null;

  constructor(host: EngineHost, id: number, sockets: TidSockets, peer: Peer, core: Transfer, source: Source, oack: TftpOption[], file: string, requested: string, client: ClientInfo, poller: LoopPoller | null = null) {
    this.host = host;
    this.id = id;
    this.socket = sockets.peer;
    this.stranger = sockets.stranger;
    this.peer = peer;
    this.key = `${peer.address}:${peer.port}`;
    this.core = core;
    this.source = source;
    this.oack = oack;
    this.file = file;
    this.requested = requested;
    this.client = client;
    this.startedMs = host.clock.monotonicMs();
    this.#ring = new Array<Buffer | undefined>(2 * core.params.windowsize);
    this.#sender = new DatagramSender(this.socket);
    this.#poller = core.params.windowsize === 1 ? poller : null;
    onDatagram(this.socket, (msg) => this.#onMessage(msg));
    this.socket.on('error', () => this.finish('socket-error'));
    this.stranger.on('message', (msg, rinfo) => this.#onStranger(msg, rinfo));
    this.stranger.on('error', () => undefined);
  }

  begin(): void {
    this.#apply(this.core.start(this.host.clock.monotonicMs()));
  }

  #onStranger(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#closed) return;
    if (rinfo.port === this.peer.port && rinfo.address === this.peer.address) {
      this.#onMessage(msg); // only before the connect took effect
      return;
    }
    // RFC 1350 §4: a packet from the wrong TID gets ERROR 5 and the transfer goes on untouched.
    this.host.counters.inc('tftp.wrong_tid');
    this.stranger.send(encodeError(ErrorCode.unknownTid, 'unknown transfer ID'), rinfo.port, rinfo.address);
  }

  /** Whether this transfer's packets go straight through its socket's handle (false: through dgram). */
  get direct(): boolean { return this.#sender.direct; }

  #onMessage(msg: Buffer): void {
    if (this.#closed) return;
    // Fast path: an ACK is 4 octets, opcode 4.
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === 4) {
      const block = (msg[2]! << 8) | msg[3]!;
      if (this.#poller !== null) this.#poller.acked(this);
      if (this.#waiting) this.#event({ kind: 'ack', block });
      else if ((++this.#acks & TURNAROUND_SAMPLE_MASK) === 0) this.#timedAck(block);
      else this.#ack(block, this.host.clock.monotonicMs());
      if (!this.#confirmed) this.#confirm();
      return;
    }
    const decoded = decodePacket(msg);
    if (decoded.ok && decoded.value.op === 'error') {
      this.#event({ kind: 'error', code: decoded.value.code });
      return;
    }
    this.host.counters.inc('tftp.transfer_bad_packet');
  }

  /** Tells the host once the client has acknowledged something: its slot is no longer one to reclaim. */
  #confirm(): void {
    if (this.#closed || !this.core.confirmed) return;
    this.#confirmed = true;
    this.host.transferConfirmed(this);
  }

  #event(event: TransferEvent): void {
    if (this.#waiting) {
      // A file read is in flight: keep the event for afterwards (bounded: a flood of ACKs is dropped).
      if (this.#queue.length < EVENT_QUEUE_MAX) this.#queue.push(event);
      else this.host.counters.inc('tftp.event_queue_full');
      return;
    }
    this.#apply(this.core.step(event, this.host.clock.monotonicMs()));
  }

  /**
   * An ACK as the core's ack() decides it, with no object allocated per packet (the lock-step
   * path runs once per block): its blocks go out, then the timer moves. One clock read.
   */
  #ack(block: number, now: number): void {
    const core = this.core;
    const outcome = core.ack(block, now);
    if (outcome === AckOutcome.send) this.#sendReleased(now);
    else if (outcome === AckOutcome.done) this.finish('done');
  }

  /** Sends the blocks the core just released ([sendFrom, sendTo)) and arms the timer. */
  #sendReleased(now: number): void {
    const core = this.core;
    const { blksize, size } = core.params;
    const resent = core.resent;
    if (resent > 0) this.host.counters.inc('tftp.retransmits', resent);
    const end = core.sendTo;
    for (let block = core.sendFrom; block < end; block++) {
      const t0 = this.#timing ? performance.now() : 0;
      const offset = (block - 1) * blksize;
      const length = Math.max(0, Math.min(blksize, size - offset));
      const packet = this.#packet(block, length);
      const copied = length === 0 ? true : this.source.copy(offset, length, packet, 4);
      if (copied !== true) {
        // A cache miss: this block and the rest go out in order once its bytes are read.
        const rest: TransferEffect[] = [];
        for (let b = block + 1; b < end; b++) {
          const o = (b - 1) * blksize;
          rest.push({ kind: 'data', block: b, offset: o, length: Math.max(0, Math.min(blksize, size - o)), retransmit: false });
        }
        rest.push({ kind: 'timer', ms: core.timerMs });
        this.#sendWhenRead(copied, block, packet, rest);
        return;
      }
      if (this.#timing) {
        const t1 = performance.now();
        this.#sendData(block, packet);
        this.#copyMs += t1 - t0;
        this.#sendMs += performance.now() - t1;
      } else {
        this.#sendData(block, packet);
      }
    }
    this.#arm(core.timerMs, now);
    if (this.#poller !== null) this.#poller.sent(this);
  }

  /** An ACK handled like any other, timed: the core's decision, the block copy, the send. */
  #timedAck(block: number): void {
    const t0 = performance.now();
    const outcome = this.core.ack(block, this.host.clock.monotonicMs());
    const t1 = performance.now();
    this.#timing = true;
    this.#copyMs = 0;
    this.#sendMs = 0;
    if (outcome === AckOutcome.send) this.#sendReleased(t1);
    else if (outcome === AckOutcome.done) this.finish('done');
    this.#timing = false;
    const c = this.host.counters;
    c.inc('tftp.turnaround.samples');
    c.inc('tftp.turnaround.step_ns', Math.round((t1 - t0) * 1e6));
    c.inc('tftp.turnaround.copy_ns', Math.round(this.#copyMs * 1e6));
    c.inc('tftp.turnaround.send_ns', Math.round(this.#sendMs * 1e6));
  }

  #apply(effects: readonly TransferEffect[]): void {
    for (let i = 0; i < effects.length; i++) {
      const effect = effects[i]!;
      switch (effect.kind) {
        case 'oack':
          this.#send(encodeOack(this.oack));
          break;
        case 'data': {
          const packet = this.#packet(effect.block, effect.length);
          const copied = effect.length === 0 ? true : this.source.copy(effect.offset, effect.length, packet, 4);
          if (effect.retransmit) this.host.counters.inc('tftp.retransmits');
          if (copied !== true) {
            // A cache miss: send this block when its bytes are read, then the rest in order.
            this.#sendWhenRead(copied, effect.block, packet, effects.slice(i + 1));
            return;
          }
          this.#sendData(effect.block, packet);
          break;
        }
        case 'timer':
          this.#arm(effect.ms, this.host.clock.monotonicMs());
          break;
        case 'done':
          this.finish('done');
          return;
        case 'abort':
          if (effect.reason === 'timeout' || effect.reason === 'idle') this.#send(encodeError(ErrorCode.notDefined, 'timed out'));
          if (effect.reason === 'unconfirmed') this.host.counters.inc('tftp.unconfirmed_gave_up');
          this.finish(effect.reason);
          return;
      }
    }
  }

  /** After a cache miss: the block goes out when its bytes are read, then `rest`, then queued events. */
  #sendWhenRead(read: Promise<void>, block: number, packet: Buffer, rest: readonly TransferEffect[]): void {
    this.#waiting = true;
    read.then(() => {
      this.#waiting = false;
      if (this.#closed) return;
      this.#sendData(block, packet);
      this.#apply(rest);
      this.#drain();
    }, (error: unknown) => {
      this.#waiting = false;
      this.host.error({ event: 'tftp.read_failed', file: this.file, err: String(error) }, 'reading a served file failed');
      this.#send(encodeError(ErrorCode.notDefined, 'read error'));
      this.finish('read-error');
    });
  }

  /**
   * The DATA buffer for a block, from a ring of 2 x windowsize buffers reused for the whole
   * transfer (no allocation per packet). Block k + 2w is only built after an ACK for k + w, so the
   * send of block k is normally long done; a retransmission rebuilds a block with the same bytes.
   * A send the socket queued (its buffer full) still points at its buffer: #sendData gives that
   * slot a new one, so a client that acknowledges ahead can never make a queued block change.
   */
  #packet(block: number, length: number): Buffer {
    const slot = block % this.#ring.length;
    let buffer = this.#ring[slot];
    if (buffer === undefined) {
      buffer = dataPacket(0, this.core.params.blksize);
      this.#ring[slot] = buffer;
    }
    buffer.writeUInt16BE(block & 0xffff, 2);
    return length === this.core.params.blksize ? buffer : buffer.subarray(0, 4 + length);
  }

  #drain(): void {
    while (!this.#waiting && !this.#closed && this.#queue.length > 0) {
      const event = this.#queue.shift()!;
      this.#apply(this.core.step(event, this.host.clock.monotonicMs()));
    }
    if (!this.#confirmed) this.#confirm();
  }

  #send(packet: Buffer): void {
    this.#sender.send(packet);
  }

  /** A DATA packet from the ring: if the socket queued it, the ring lets go of its buffer. */
  #sendData(block: number, packet: Buffer): void {
    if (this.#sender.send(packet) === SEND_QUEUED) this.#ring[block % this.#ring.length] = undefined;
  }

  /** One timer per transfer, moved by a deadline instead of being reset on every ACK. */
  #arm(ms: number, now: number): void {
    this.#deadline = now + ms;
    if (this.#timer === null) this.#timer = setTimeout(() => this.#fire(), ms);
  }

  #fire(): void {
    this.#timer = null;
    if (this.#closed) return;
    const now = this.host.clock.monotonicMs();
    if (now < this.#deadline - 1) {
      this.#timer = setTimeout(() => this.#fire(), this.#deadline - now);
      return;
    }
    this.#event({ kind: 'timeout' });
  }

  /** Ends the transfer from outside (server stop, failover): the client hears an ERROR and retries elsewhere. */
  cancel(message: string, outcome = 'cancelled'): void {
    if (this.#closed) return;
    this.#send(encodeError(ErrorCode.notDefined, message));
    this.core.step({ kind: 'cancel' }, this.host.clock.monotonicMs());
    this.finish(outcome);
  }

  finish(outcome: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.source.close();
    // Let the last packets leave before the socket goes.
    setImmediate(() => closeSockets({ peer: this.socket, stranger: this.stranger }));
    this.host.transferEnded(this, outcome);
  }

  info(): TransferInfo {
    const p = this.core.params;
    const now = this.host.clock.monotonicMs();
    return {
      client: this.key, file: this.file, requested: this.requested, bytes: this.core.ackedBytes, size: p.size,
      blksize: p.blksize, windowsize: p.windowsize, ms: Math.round(now - this.startedMs), retransmits: this.core.retransmits,
      idleMs: Math.round(this.core.idleMs(now)), stalled: this.core.stalled(now),
    };
  }
}

/**
 * Runs the busy-poll choice (busy-poll.ts) on this thread's loop: it times each lock-step round
 * trip, and in a polling epoch keeps libuv's poll phase at timeout 0 after a DATA goes out (a
 * chain of setImmediate), so the ACK is read as soon as it arrives instead of after a sleep and a
 * wake-up; the chain ends with the window or when the ACK came and nothing was sent after it.
 */
export class LoopPoller {
  readonly core: BusyPoll;
  readonly #clock: Clock;
  readonly #counters: Counters;
  readonly #transfers: () => number;
  /** The transfer whose last DATA went out at #sentUs (null: none, or more than one transfer runs). */
  #timed: ActiveTransfer | null = null;
  /** The same until its ACK comes in. */
  #awaited: ActiveTransfer | null = null;
  #sentUs = 0;
  #lastUs = 0;
  #endUs = 0;
  /** A polling window is open. */
  #open = false;
  /** A setImmediate of the chain is pending. */
  #running = false;

  constructor(maxUs: number, clock: Clock, counters: Counters, transfers: () => number) {
    this.core = new BusyPoll(maxUs);
    this.#clock = clock;
    this.#counters = counters;
    this.#transfers = transfers;
  }

  /** Whether a setImmediate chain is running (a window is open, or closes at its next turn). */
  get polling(): boolean { return this.#running; }

  /**
   * `transfer` just sent a DATA block and now waits for its ACK. The time since its previous block
   * went out is one lock-step round trip as the client sees it (both ends' work and wake-ups).
   */
  sent(transfer: ActiveTransfer): void {
    const now = this.#clock.monotonicMs() * 1000;
    const transfers = this.#transfers();
    const core = this.core;
    if (transfers === 1 && this.#timed === transfer) {
      const ended = core.sample(now - this.#sentUs);
      if (ended !== EpochEnd.none) this.#epochEnded(ended);
    }
    const end = core.open(now, transfers);
    this.#timed = transfers === 1 ? transfer : null;
    this.#awaited = this.#timed;
    this.#sentUs = now;
    this.#open = end !== 0;
    if (!this.#open) return;
    this.#lastUs = now;
    this.#endUs = end;
    if (!this.#running) {
      this.#running = true;
      setImmediate(this.#turn);
    }
  }

  /** Counts an epoch; the probes' mean round trips add up so a run's mean can be read (bench:tftp). */
  #epochEnded(ended: EpochEnd): void {
    const c = this.#counters;
    if (ended === EpochEnd.polled || ended === EpochEnd.pollingProbe) c.inc('tftp.busy_poll.epochs_polled');
    else c.inc('tftp.busy_poll.epochs_slept');
    if (ended === EpochEnd.pollingProbe) {
      // A pair of probes, one just after the other: their means say what polling gains here.
      c.inc('tftp.busy_poll.probes');
      c.inc('tftp.busy_poll.probe_sleep_ns', Math.round(this.core.sleepMeanUs * 1000));
      c.inc('tftp.busy_poll.probe_poll_ns', Math.round(this.core.pollMeanUs * 1000));
    }
  }

  /** An ACK came in for `transfer`: a window with nothing sent after it closes at the next turn. */
  acked(transfer: ActiveTransfer): void {
    if (this.#awaited === transfer) this.#awaited = null;
  }

  readonly #turn = (): void => {
    if (!this.#open || this.#awaited === null) {
      this.#running = false;
      return;
    }
    const now = this.#clock.monotonicMs() * 1000;
    const outcome = this.core.turn(now, this.#lastUs, this.#endUs);
    this.#lastUs = now;
    if (outcome === TurnOutcome.poll) {
      setImmediate(this.#turn);
      return;
    }
    this.#running = false;
    this.#open = false;
    this.#counters.inc(outcome === TurnOutcome.ended ? 'tftp.busy_poll.misses' : 'tftp.busy_poll.preempted');
  };
}

export class TransferEngine {
  readonly config: TftpConfig;
  readonly cache: BlockCache<OpenedFile>;
  readonly #host: EngineHost;
  readonly #rootReal: string;
  readonly #rules: RemapRule[];
  #transfers = new Map<number, ActiveTransfer>();
  #stopped = false;
  readonly #poller: LoopPoller | null;

  /** `cache` is this thread's handle on the block cache the server allocated for all transfer threads. */
  constructor(config: TftpConfig, rootReal: string, host: EngineHost, cache: BlockCache<OpenedFile>) {
    this.config = config;
    this.#rootReal = rootReal;
    this.#host = host;
    this.#rules = compileRemap(config.remap);
    this.cache = cache;
    this.#poller = config.busyPollUs > 0 ? new LoopPoller(config.busyPollUs, host.clock, host.counters, () => this.#transfers.size) : null;
  }

  get size(): number { return this.#transfers.size; }

  transfers(): TransferInfo[] {
    return [...this.#transfers.values()].map((t) => t.info());
  }

  /** Per running transfer, how long since its last ACK progress and when that counts as stalled. */
  idleTimes(): IdleTime[] {
    const now = this.#host.clock.monotonicMs();
    return [...this.#transfers.values()].map((t) => ({ id: t.id, idleMs: t.core.idleMs(now), stallAfterMs: t.core.stallAfterMs }));
  }

  /** Forget a transfer that has ended (its host was told). */
  forget(id: number): void {
    this.#transfers.delete(id);
  }

  /** Ends every transfer with an ERROR so clients retry at once (planned failover, stop). */
  cancelAll(message: string): number {
    const all = [...this.#transfers.values()];
    for (const t of all) t.cancel(message);
    return all.length;
  }

  /** Ends one transfer whose slot the server gave to another request (server.ts #reclaim). */
  reclaim(id: number, message: string): void {
    this.#transfers.get(id)?.cancel(message, 'reclaimed');
  }

  stop(): void {
    this.#stopped = true;
    this.cancelAll('server shutting down');
  }

  /**
   * Starts a transfer of the requested file, or of `rendered` (a boot file rendered for this
   * client by services/boot, never read from disk) when given.
   */
  async start(id: number, local: string, request: RequestPacket, peer: Peer, client: ClientInfo, rendered?: RenderedFile): Promise<StartOutcome> {
    const mode = request.mode;
    if (mode !== 'octet' && mode !== 'netascii') {
      return { kind: 'refused', code: ErrorCode.illegalOperation, message: `transfer mode ${printable(mode)} is not supported (octet or netascii)`, reason: 'mode' };
    }
    let source: Source;
    let served: string;
    if (rendered !== undefined) {
      const bytes = Buffer.from(rendered.bytes.buffer, rendered.bytes.byteOffset, rendered.bytes.byteLength);
      source = new BufferSource(mode === 'netascii' ? toNetascii(bytes) : bytes);
      served = rendered.name;
    } else {
      const opened = await this.#open(request.filename, client);
      if (!opened.ok) return opened.refused;
      if (opened.exhausted) return { kind: 'exhausted', what: 'file', code: 'EMFILE' };
      served = opened.served;
      if (mode === 'netascii') {
        const file = opened.file;
        if (file.size > NETASCII_BYTES_MAX) {
          releaseFile(file);
          return { kind: 'refused', code: ErrorCode.accessViolation, message: 'file too big for netascii (use octet)', reason: 'netascii-size' };
        }
        const raw = await readFile(file.handle).finally(() => releaseFile(file));
        source = new BufferSource(toNetascii(raw));
      } else {
        source = new CachedSource(opened.file, this.cache);
      }
    }
    const negotiated = negotiate(request.options, source.size, {
      blksizeMax: this.config.blksizeMax, windowsizeMax: this.config.windowsizeMax, timeoutMs: this.config.timeout,
    });
    const core = new Transfer({
      size: source.size, blksize: negotiated.blksize, windowsize: negotiated.windowsize, timeoutMs: negotiated.timeoutMs,
      retries: this.config.retries, idleTimeoutMs: this.config.idleTimeout, oack: negotiated.oack.length > 0,
      unconfirmedRetries: Math.min(this.config.retries, UNCONFIRMED_RETRIES),
    });
    let sockets: TidSockets;
    try {
      sockets = await openTid(local, peer);
    } catch (error) {
      source.close();
      const code = fdShortageCode(error);
      if (code !== null) return { kind: 'exhausted', what: 'socket', code };
      throw error;
    }
    if (negotiated.windowsize > 1) {
      try { sockets.peer.setSendBufferSize(Math.min(8 << 20, Math.max(1 << 18, negotiated.windowsize * (negotiated.blksize + 64) * 4))); } catch { /* the kernel caps it */ }
    }
    if (this.#stopped) {
      source.close();
      closeSockets(sockets);
      return { kind: 'stopped' };
    }
    const transfer = new ActiveTransfer(this.#host, id, sockets, peer, core, source, negotiated.oack, served, request.filename, client, this.#poller);
    this.#transfers.set(id, transfer);
    transfer.begin();
    return { kind: 'started' };
  }

  /** Remapping, name checks and the open inside the root: the file, or the refusal to send. */
  async #open(filename: string, client: ClientInfo): Promise<{ ok: true; exhausted?: false; file: OpenedFile; served: string } | { ok: true; exhausted: true } | { ok: false; refused: StartOutcome }> {
    const candidates = remapCandidates(rootRelative(filename), this.#rules, client);
    let refusal: { code: number; message: string; kind: string } | null = null;
    for (const candidate of candidates) {
      const checked = checkName(candidate.name);
      if (!checked.ok) {
        refusal = { code: ErrorCode.accessViolation, message: `access violation: ${refusalText[checked.reason]}`, kind: `name-${checked.reason}` };
        if (candidate.fallThrough) continue;
        break;
      }
      const result = await openInRoot(this.#rootReal, checked.path);
      if (result.ok) return { ok: true, file: result.file, served: checked.path };
      if (result.reason === 'fd-exhausted') return { ok: true, exhausted: true };
      refusal = openRefusal(result.reason);
      if (!(candidate.fallThrough && result.reason === 'not-found')) break;
    }
    const r = refusal ?? { code: ErrorCode.fileNotFound, message: 'file not found', kind: 'not-found' };
    return { ok: false, refused: { kind: 'refused', code: r.code, message: r.message, reason: r.kind } };
  }
}

interface TidSockets {
  peer: dgram.Socket;
  stranger: dgram.Socket;
}

function bindSocket(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise<void>((ok, fail) => {
    socket.once('error', fail);
    socket.bind(port, address, () => { socket.off('error', fail); ok(); });
  });
}

/**
 * A transfer's TID: a fresh port on the address the request came in on (so replies leave from the
 * address the client used), held by two sockets. The one connected to the peer carries the
 * transfer; its unconnected twin (SO_REUSEADDR, same port) gets every other sender, for ERROR 5.
 */
async function openTid(local: string, peer: Peer): Promise<TidSockets> {
  const type = local.includes(':') ? 'udp6' : 'udp4';
  const stranger = dgram.createSocket({ type, reuseAddr: true });
  const connected = dgram.createSocket({ type, reuseAddr: true });
  try {
    await bindSocket(stranger, 0, local);
    await bindSocket(connected, stranger.address().port, local);
    await new Promise<void>((ok, fail) => {
      connected.once('error', fail);
      connected.connect(peer.port, peer.address, () => { connected.off('error', fail); ok(); });
    });
  } catch (error) {
    closeSockets({ peer: connected, stranger });
    throw error;
  }
  return { peer: connected, stranger };
}

function closeSockets(sockets: TidSockets): void {
  for (const s of [sockets.peer, sockets.stranger]) {
    try { s.close(); } catch { /* not bound or already closed */ }
  }
}

const refusalText: Record<string, string> = {
  'empty': 'empty file name',
  'nul': 'NUL in file name',
  'absolute': 'absolute file names are refused',
  'dotdot': '".." in file name',
  'too-long': 'file name longer than 255 octets',
};

/**
 * The ERROR for a file that cannot be served, as tftpd-hpa answers: a missing file (or a file asked
 * for as a directory, `a/`: ENOTDIR) is 1, a directory is 0 "Is a directory" (its EISDIR), what is
 * outside the root, not regular or not world-readable is 2.
 */
function openRefusal(reason: OpenRefusal): { code: number; message: string; kind: string } {
  if (reason === 'not-found') return { code: ErrorCode.fileNotFound, message: 'file not found', kind: 'not-found' };
  if (reason === 'directory') return { code: ErrorCode.notDefined, message: 'Is a directory', kind: 'directory' };
  return { code: ErrorCode.accessViolation, message: `access violation: ${openRefusalText[reason]}`, kind: reason };
}

const openRefusalText: Record<string, string> = {
  'outside-root': 'outside the served directory',
  'not-regular': 'not a regular file',
  'not-readable': 'file not readable',
};

