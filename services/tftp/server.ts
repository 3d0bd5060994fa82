import dgram from 'node:dgram';
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { serviceAddresses } from '../../lib/listen.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { RunningService, ServiceContext, ServiceStatus } from '../registry.js';
import type { TftpConfig } from './config.js';
import { dataPacket, decodePacket, encodeError, encodeOack, ErrorCode, type RequestPacket, type TftpOption } from './wire.js';
import { negotiate, Transfer, type TransferEffect, type TransferEvent } from './transfer.js';
import { checkName, compileRemap, remapCandidates, type ClientInfo, type RemapRule } from './paths.js';
import { BlockCache, BufferSource, CachedSource, openInRoot, releaseFile, toNetascii, type OpenedFile, type Source } from './files.js';

// The TFTP shell: one listening socket per served address, one ephemeral socket per transfer (its
// TID) bound to the address the request came in on, file reads through the shared block cache,
// one timer per transfer. The protocol decisions live in transfer.ts, names in paths.ts.

/** netascii is converted in memory: refuse it for files bigger than this (kernels go octet). */
const NETASCII_BYTES_MAX = 16 << 20;
const EVENT_QUEUE_MAX = 256;

export interface TftpServerOptions {
  config: TftpConfig;
  addresses: readonly string[];
  log: Logger;
  clock: Clock;
  /** Replicated state, for per-client names (the client's lease) and boot events. */
  state?: StateLog;
  cacheBytes?: number;
}

interface Peer {
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
}

class ActiveTransfer {
  readonly server: TftpServer;
  readonly peer: Peer;
  readonly key: string;
  /** Connected to the peer: the kernel hands it only the peer's packets and sends without a route lookup. */
  readonly socket: dgram.Socket;
  /** Unconnected twin on the same port: it receives what comes from anyone else (wrong TIDs). */
  readonly stranger: dgram.Socket;
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

  constructor(server: TftpServer, sockets: TidSockets, peer: Peer, core: Transfer, source: Source, oack: TftpOption[], file: string, requested: string, client: ClientInfo) {
    this.server = server;
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
    this.startedMs = server.clock.monotonicMs();
    this.#ring = new Array<Buffer | undefined>(2 * core.params.windowsize);
    this.socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    this.socket.on('error', () => this.finish('socket-error'));
    this.stranger.on('message', (msg, rinfo) => this.#onStranger(msg, rinfo));
    this.stranger.on('error', () => undefined);
  }

  begin(): void {
    this.#apply(this.core.start(this.server.clock.monotonicMs()));
  }

  #onStranger(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#closed) return;
    if (rinfo.port === this.peer.port && rinfo.address === this.peer.address) {
      this.#onMessage(msg, rinfo); // only before the connect took effect
      return;
    }
    // RFC 1350 §4: a packet from the wrong TID gets ERROR 5 and the transfer goes on untouched.
    this.server.counters.inc('tftp.wrong_tid');
    this.stranger.send(encodeError(ErrorCode.unknownTid, 'unknown transfer ID'), rinfo.port, rinfo.address);
  }

  #onMessage(msg: Buffer, _rinfo: dgram.RemoteInfo): void {
    if (this.#closed) return;
    // Fast path: an ACK is 4 octets, opcode 4.
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === 4) {
      this.#event({ kind: 'ack', block: (msg[2]! << 8) | msg[3]! });
      return;
    }
    const decoded = decodePacket(msg);
    if (decoded.ok && decoded.value.op === 'error') {
      this.#event({ kind: 'error', code: decoded.value.code });
      return;
    }
    this.server.counters.inc('tftp.transfer_bad_packet');
  }

  #event(event: TransferEvent): void {
    if (this.#waiting) {
      // A file read is in flight: keep the event for afterwards (bounded: a flood of ACKs is dropped).
      if (this.#queue.length < EVENT_QUEUE_MAX) this.#queue.push(event);
      else this.server.counters.inc('tftp.event_queue_full');
      return;
    }
    this.#apply(this.core.step(event, this.server.clock.monotonicMs()));
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
          if (effect.retransmit) this.server.counters.inc('tftp.retransmits');
          if (copied !== true) {
            // A cache miss: send this block when its bytes are read, then the rest in order.
            this.#waiting = true;
            const rest = effects.slice(i + 1);
            copied.then(() => {
              this.#waiting = false;
              if (this.#closed) return;
              this.#send(packet);
              this.#apply(rest);
              this.#drain();
            }, (error: unknown) => {
              this.#waiting = false;
              this.server.log.error({ event: 'tftp.read_failed', file: this.file, err: error }, 'reading a served file failed');
              this.#send(encodeError(ErrorCode.notDefined, 'read error'));
              this.finish('read-error');
            });
            return;
          }
          this.#send(packet);
          break;
        }
        case 'timer':
          this.#arm(effect.ms);
          break;
        case 'done':
          this.finish('done');
          return;
        case 'abort':
          if (effect.reason === 'timeout' || effect.reason === 'idle') this.#send(encodeError(ErrorCode.notDefined, 'timed out'));
          this.finish(effect.reason);
          return;
      }
    }
  }

  /**
   * The DATA buffer for a block, from a ring of 2 x windowsize buffers reused for the whole
   * transfer (no allocation per packet). Safe: block k + 2w is only built after an ACK for k + w,
   * so the send of block k is long done; a retransmission rebuilds a block with the same bytes.
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
      this.#apply(this.core.step(event, this.server.clock.monotonicMs()));
    }
  }

  #send(packet: Buffer): void {
    this.socket.send(packet);
  }

  /** One timer per transfer, moved by a deadline instead of being reset on every ACK. */
  #arm(ms: number): void {
    const now = this.server.clock.monotonicMs();
    this.#deadline = now + ms;
    if (this.#timer === null) this.#timer = setTimeout(() => this.#fire(), ms);
  }

  #fire(): void {
    this.#timer = null;
    if (this.#closed) return;
    const now = this.server.clock.monotonicMs();
    if (now < this.#deadline - 1) {
      this.#timer = setTimeout(() => this.#fire(), this.#deadline - now);
      return;
    }
    this.#event({ kind: 'timeout' });
  }

  /** Ends the transfer from outside (server stop, failover): the client hears an ERROR and retries elsewhere. */
  cancel(message: string): void {
    if (this.#closed) return;
    this.#send(encodeError(ErrorCode.notDefined, message));
    this.core.step({ kind: 'cancel' }, this.server.clock.monotonicMs());
    this.finish('cancelled');
  }

  finish(outcome: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.source.close();
    // Let the last packets leave before the socket goes.
    setImmediate(() => closeSockets({ peer: this.socket, stranger: this.stranger }));
    this.server.transferEnded(this, outcome);
  }

  info(): TransferInfo {
    const p = this.core.params;
    return {
      client: this.key, file: this.file, requested: this.requested, bytes: this.core.ackedBytes, size: p.size,
      blksize: p.blksize, windowsize: p.windowsize, ms: Math.round(this.server.clock.monotonicMs() - this.startedMs), retransmits: this.core.retransmits,
    };
  }
}

export class TftpServer {
  readonly config: TftpConfig;
  readonly log: Logger;
  readonly clock: Clock;
  readonly counters = new Counters();
  readonly cache: BlockCache;
  readonly #addresses: readonly string[];
  readonly #state: StateLog | undefined;
  readonly #rules: RemapRule[];
  readonly #limiter = new LogLimiter();
  readonly #lag: IntervalHistogram;
  #rootReal = '';
  #listeners: Array<{ address: string; socket: dgram.Socket }> = [];
  #transfers = new Map<string, ActiveTransfer>();
  #perClient = new Map<string, number>();
  /** Requests being opened (not yet transfers), counted against the limits too. */
  #starting = new Set<string>();
  #stopped = false;

  constructor(options: TftpServerOptions) {
    this.config = options.config;
    this.log = options.log;
    this.clock = options.clock;
    this.#addresses = options.addresses;
    this.#state = options.state;
    this.#rules = compileRemap(options.config.remap);
    this.cache = new BlockCache(options.cacheBytes ?? options.config.cacheMiB * 1048576);
    this.#lag = monitorEventLoopDelay({ resolution: 10 });
  }

  async start(): Promise<void> {
    this.#rootReal = await realpath(resolve(this.config.root));
    this.#lag.enable();
    try {
      for (const address of this.#addresses) {
        const socket = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
        await new Promise<void>((ok, fail) => {
          socket.once('error', fail);
          socket.bind(this.config.port, address, () => { socket.off('error', fail); ok(); });
        });
        socket.on('message', (msg, rinfo) => this.#onRequest(address, socket, msg, rinfo));
        socket.on('error', (error) => this.log.warn({ event: 'tftp.socket_error', address, err: error }, 'tftp listening socket error'));
        this.#listeners.push({ address, socket });
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  listening(): string[] {
    return this.#listeners.map(({ socket }) => {
      const a = socket.address();
      return `udp ${a.address}:${a.port}`;
    });
  }

  /** The port actually bound (tests use port 0). */
  port(): number {
    const first = this.#listeners[0];
    return first ? first.socket.address().port : this.config.port;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const transfer of [...this.#transfers.values()]) transfer.cancel('server shutting down');
    for (const { socket } of this.#listeners) {
      await new Promise<void>((ok) => { try { socket.close(() => ok()); } catch { ok(); } });
    }
    this.#listeners = [];
    this.#lag.disable();
  }

  status(): ServiceStatus {
    return {
      listening: this.listening(),
      root: this.#rootReal,
      transfers: [...this.#transfers.values()].map((t) => t.info()),
      counters: this.counters.toJSON(),
      cache: this.cache.stats(),
      eventLoopLagMs: { p50: this.#lag.percentile(50) / 1e6, p99: this.#lag.percentile(99) / 1e6, max: this.#lag.max / 1e6 },
    };
  }

  get activeTransfers(): number { return this.#transfers.size; }

  #onRequest(local: string, listener: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#stopped) return;
    const decoded = decodePacket(msg);
    if (!decoded.ok) {
      this.#drop('malformed', rinfo, decoded.error.code);
      return;
    }
    const packet = decoded.value;
    if (packet.op === 'wrq') {
      // Read-only server (RFC 1350 §5 code 2).
      this.counters.inc('tftp.wrq_refused');
      this.#refuse(listener, rinfo, ErrorCode.accessViolation, 'read-only server: writes are refused', 'wrq', packet.filename);
      return;
    }
    if (packet.op !== 'rrq') {
      // DATA/ACK/OACK/ERROR to the listening port belong to no transfer.
      this.#drop('not-a-request', rinfo, packet.op);
      return;
    }
    const key = `${rinfo.address}:${rinfo.port}`;
    if (this.#transfers.has(key) || this.#starting.has(key)) {
      // A retransmitted RRQ while its transfer runs: the transfer answers for it.
      this.counters.inc('tftp.duplicate_request');
      return;
    }
    if (this.#transfers.size + this.#starting.size >= this.config.maxTransfers) {
      // Silent drop: the client's own RRQ retry comes back when a slot is free (an ERROR would make firmware give up).
      this.#drop('busy', rinfo, 'maxTransfers');
      this.counters.inc('tftp.busy');
      return;
    }
    if ((this.#perClient.get(rinfo.address) ?? 0) >= this.config.perClientTransfers) {
      this.#drop('client-busy', rinfo, 'perClientTransfers');
      this.counters.inc('tftp.client_busy');
      return;
    }
    this.#starting.add(key);
    this.#perClient.set(rinfo.address, (this.#perClient.get(rinfo.address) ?? 0) + 1);
    void this.#startTransfer(local, listener, packet, { address: rinfo.address, port: rinfo.port }).catch((error: unknown) => {
      this.log.error({ event: 'tftp.transfer_start_failed', client: key, err: error }, 'starting a transfer failed');
    }).finally(() => {
      this.#starting.delete(key);
      if (!this.#transfers.has(key)) this.#releaseClient(rinfo.address);
    });
  }

  #releaseClient(address: string): void {
    const n = (this.#perClient.get(address) ?? 1) - 1;
    if (n <= 0) this.#perClient.delete(address);
    else this.#perClient.set(address, n);
  }

  #drop(kind: string, rinfo: dgram.RemoteInfo, detail: string): void {
    this.counters.inc(`tftp.dropped.${kind}`);
    if (this.log.isLevelEnabled('debug') && this.#limiter.allow(kind, this.clock.monotonicMs())) {
      this.log.debug({ event: 'tftp.dropped', kind, client: `${rinfo.address}:${rinfo.port}`, detail }, 'tftp packet dropped');
    }
  }

  #refuse(listener: dgram.Socket, rinfo: dgram.RemoteInfo | Peer, code: number, message: string, kind: string, file: string): void {
    listener.send(encodeError(code, message), rinfo.port, rinfo.address);
    if (this.#limiter.allow(`refused.${kind}`, this.clock.monotonicMs())) {
      this.log.info({ event: 'tftp.refused', client: `${rinfo.address}:${rinfo.port}`, file: printable(file), reason: kind, code }, `tftp request refused: ${kind}`);
    }
  }

  /** The client's lease (MAC, hostname) from the replicated state, when it has a bound one. */
  clientInfo(address: string): ClientInfo {
    const info: ClientInfo = { ip: address };
    const ip = parseIpv4(address);
    const lease = ip === null ? undefined : this.#state?.fsm.lease(ip);
    if (lease && lease.state === 'bound') {
      info.mac = lease.mac;
      if (lease.hostname !== undefined) info.hostname = lease.hostname;
    }
    return info;
  }

  async #startTransfer(local: string, listener: dgram.Socket, request: RequestPacket, peer: Peer): Promise<void> {
    const mode = request.mode;
    if (mode !== 'octet' && mode !== 'netascii') {
      this.counters.inc('tftp.bad_mode');
      this.#refuse(listener, peer, ErrorCode.illegalOperation, `transfer mode ${printable(mode)} is not supported (octet or netascii)`, 'mode', request.filename);
      return;
    }
    const client = this.clientInfo(peer.address);
    const candidates = remapCandidates(request.filename, this.#rules, client);
    let opened: OpenedFile | null = null;
    let served = '';
    let refusal: { code: number; message: string; kind: string } | null = null;
    for (const candidate of candidates) {
      const checked = checkName(candidate.name);
      if (!checked.ok) {
        refusal = { code: ErrorCode.accessViolation, message: `access violation: ${refusalText[checked.reason]}`, kind: `name-${checked.reason}` };
        if (candidate.fallThrough) continue;
        break;
      }
      const result = await openInRoot(this.#rootReal, checked.path);
      if (result.ok) {
        opened = result.file;
        served = checked.path;
        refusal = null;
        break;
      }
      refusal = result.reason === 'not-found'
        ? { code: ErrorCode.fileNotFound, message: 'file not found', kind: 'not-found' }
        : { code: ErrorCode.accessViolation, message: `access violation: ${openRefusalText[result.reason]}`, kind: result.reason };
      if (!(candidate.fallThrough && result.reason === 'not-found')) break;
    }
    if (opened === null) {
      const r = refusal ?? { code: ErrorCode.fileNotFound, message: 'file not found', kind: 'not-found' };
      this.counters.inc(`tftp.refused.${r.kind}`);
      this.#refuse(listener, peer, r.code, r.message, r.kind, request.filename);
      return;
    }
    let source: Source;
    if (mode === 'netascii') {
      if (opened.size > NETASCII_BYTES_MAX) {
        releaseFile(opened);
        this.#refuse(listener, peer, ErrorCode.accessViolation, 'file too big for netascii (use octet)', 'netascii-size', request.filename);
        return;
      }
      const raw = await readFile(opened.handle).finally(() => releaseFile(opened));
      source = new BufferSource(toNetascii(raw));
    } else {
      source = new CachedSource(opened, this.cache);
    }
    const negotiated = negotiate(request.options, source.size, {
      blksizeMax: this.config.blksizeMax, windowsizeMax: this.config.windowsizeMax, timeoutMs: this.config.timeout,
    });
    const core = new Transfer({
      size: source.size, blksize: negotiated.blksize, windowsize: negotiated.windowsize, timeoutMs: negotiated.timeoutMs,
      retries: this.config.retries, idleTimeoutMs: this.config.idleTimeout, oack: negotiated.oack.length > 0,
    });
    let sockets: TidSockets;
    try {
      sockets = await openTid(local, peer);
    } catch (error) {
      source.close();
      throw error;
    }
    if (negotiated.windowsize > 1) {
      try { sockets.peer.setSendBufferSize(Math.min(8 << 20, Math.max(1 << 18, negotiated.windowsize * (negotiated.blksize + 64) * 4))); } catch { /* the kernel caps it */ }
    }
    if (this.#stopped) {
      source.close();
      closeSockets(sockets);
      return;
    }
    const transfer = new ActiveTransfer(this, sockets, peer, core, source, negotiated.oack, served, request.filename, client);
    this.#transfers.set(transfer.key, transfer);
    this.#starting.delete(transfer.key);
    this.counters.inc('tftp.transfers_started');
    transfer.begin();
  }

  /** Called by a transfer when it ends, whatever the outcome. */
  transferEnded(transfer: ActiveTransfer, outcome: string): void {
    if (this.#transfers.get(transfer.key) !== transfer) return;
    this.#transfers.delete(transfer.key);
    this.#releaseClient(transfer.peer.address);
    const info = transfer.info();
    const ok = outcome === 'done';
    this.counters.inc(ok ? 'tftp.transfers_done' : 'tftp.transfers_failed');
    if (ok) this.counters.inc('tftp.bytes_sent', info.size);
    const line = { event: ok ? 'tftp.transfer.done' : 'tftp.transfer.failed', ...info, requested: printable(info.requested), outcome, ...(transfer.client.mac ? { mac: transfer.client.mac } : {}) };
    if (ok) this.log.info(line, 'tftp transfer done');
    else this.log.warn(line, `tftp transfer ended: ${outcome}`);
    this.#bootEvent(transfer, ok);
  }

  /** Compute-node boot progress: "fetched this file" goes into the replicated log (leader only). */
  #bootEvent(transfer: ActiveTransfer, ok: boolean): void {
    const mac = transfer.client.mac;
    if (!ok || mac === undefined || !this.#state?.isLeader()) return;
    this.#state.propose({ type: 'node.boot', mac, event: 'tftp', detail: transfer.file }).catch(() => undefined);
  }

  /** Ends every transfer with an ERROR so clients retry at once (planned failover). */
  cancelAll(message: string): number {
    const all = [...this.#transfers.values()];
    for (const t of all) t.cancel(message);
    return all.length;
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

const openRefusalText: Record<string, string> = {
  'outside-root': 'outside the served directory',
  'not-regular': 'not a regular file',
  'not-readable': 'file not readable',
};

/** Names from the wire go into logs escaped, never raw. */
function printable(text: string): string {
  return JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}...` : text).slice(1, -1);
}

export async function startTftp(context: ServiceContext): Promise<RunningService> {
  const config = context.config.tftp!;
  const server = new TftpServer({
    config,
    addresses: serviceAddresses(context.config, config.listen),
    log: context.log,
    clock: context.clock,
    state: context.state,
  });
  await server.start();
  return {
    name: 'tftp',
    status: () => server.status(),
    stop: () => server.stop(),
    routes: {
      'GET /v1/tftp': () => ({ status: 200, body: server.status() }),
    },
  };
}
