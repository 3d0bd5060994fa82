import { createServer, type Server, type Socket } from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate, randomBytes } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import { keepListening, listenOn } from '../../lib/stream-listen.js';
import { Counters } from '../../lib/counters.js';
import type { Message, NodeId, PeerLink } from './types.js';
import { REPORT_BYTES_MAX, type MemberStatusChannel } from '../member-status.js';
import { timerDelayMs, type Clock } from '../../lib/clock.js';
import { linkLiveness, type LinkLiveness } from '../timers.js';
import { LinkWatch } from './link-watch.js';
import { clusterKeyChannel, type PeerAddress, type PeerChannel } from './transport-channel.js';
import { tlsChannel } from './tls-channel.js';
import { bundleValidTo, caBundle, type TlsMaterial } from './tls.js';
import {
  Feature, FEATURES, FrameKind, decodeHello, decodeMessage, encodeFrame, encodeHello, encodeMessage, frameMacOk, macEqual, proof, sessionKey, splitFrames, type Frame,
} from './wire.js';

// Raft between members over TCP. Each member dials every peer and sends its own messages on that
// outbound connection; what it receives comes in on the connections peers dialled. The link is
// secured by a channel (transport-channel.ts): plain TCP and the shared cluster key, or TLS 1.3
// with the cluster CA's certificates and a key exported from the session. Over either, peers prove
// they hold that key (HMAC challenge-response over fresh nonces from both ends), then every
// frame carries a MAC under a key derived from both nonces and a sequence number, so frames cannot
// be forged, replayed or reordered. A peer that fails any check is dropped and logged (rate-limited).
// Queues are bounded (Raft copes with loss: the oldest message goes first) and dials back off.
// Member reports (cluster/member-status.ts) ride the same connections the other way: a listener
// sends its own report back to each authenticated dialler once a second, under a key of its own.
// Liveness: when both ends offer it (a feature bit in the hello), each end of a link pings it when
// it has sent nothing for a while and closes it when it has heard nothing for longer than a
// deadline (cluster/timers.ts linkLiveness); the dialler then redials. A dial that has not finished
// its handshake within dialMs is abandoned too, so a SYN lost in a cut does not wait for TCP.

export type { PeerAddress };

export interface TransportOptions {
  self: NodeId;
  clusterId: string;
  /** The shared cluster key (`cluster.keyFile`), when the links are not TLS. */
  key?: Uint8Array;
  /** Mutual TLS (`cluster.tls`): the links are TLS 1.3 and the handshake is keyed from each session. */
  tls?: TlsMaterial;
  listen: PeerAddress;
  peers: Record<NodeId, PeerAddress>;
  log: Logger;
  maxQueue?: number;
  handshakeTimeoutMs?: number;
  /** Ping and dead-link timing (default: linkLiveness of the default 500 ms election timeout); false: neither. */
  liveness?: LinkLiveness | false;
  /** Monotonic time for the liveness deadlines (tests move it by hand). */
  clock?: Pick<Clock, 'monotonicMs'>;
}

/** One authenticated link whose two ends both offered pings. */
interface WatchedLink {
  peer: NodeId;
  direction: 'inbound' | 'outbound';
  socket: Socket;
  watch: LinkWatch;
  ping(): void;
}

const PING_PAYLOAD = new Uint8Array(0);

const HANDSHAKE_FRAME_MAX = 4096;
/**
 * Accepted connections that have not proved themselves yet, in all and per source address: without a
 * bound, anyone who can reach the peer port holds a file descriptor per connection for the handshake
 * timeout, and enough of them starve every other socket and file of the daemon (EMFILE). A member
 * dials from its own address, once at a time, so a source at its share is never a member's.
 */
export const HANDSHAKES_MAX = 64;
export const HANDSHAKES_PER_SOURCE_MAX = 4;
const STATUS_FRAME_MAX = REPORT_BYTES_MAX + 64;
/** A dialler that does not read its socket gets no more reports past this much unsent. */
const STATUS_BACKLOG_MAX = 4 * REPORT_BYTES_MAX;
const BACKOFF_MIN_MS = 20;
const BACKOFF_MAX_MS = 1000;
const DEFAULT_LIVENESS = linkLiveness({ electionMs: 500 });

/** Reads a cluster key file: 32+ bytes written as hex or base64 (whitespace ignored). */
export function readKeyFile(file: string, log?: Logger): Uint8Array {
  const text = readFileSync(file, 'utf8').replace(/\s+/g, '');
  const key = /^[0-9a-f]+$/i.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length < 32) throw new Error(`${file}: the cluster key must hold at least 32 random bytes (hex or base64); it has ${key.length}`);
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0 && log) log.warn({ event: 'raft.key_file_mode', file }, `${file} is readable by group or others; chmod 600 it`);
  return key;
}

export class Transport implements PeerLink {
  #o: TransportOptions;
  #server: Server | undefined;
  #out = new Map<NodeId, Outbound>();
  #inbound = new Map<NodeId, Socket>();
  /**
   * Every accepted connection, authenticated or not: close() ends them all. server.close() waits for
   * each one, and a link whose handshake finished after close() (so never in #inbound) stayed up,
   * kept alive by the dialler's pings, and close() never returned.
   */
  #accepted = new Map<Socket, Socket>();
  /** Connections still in their handshake, per source address (HANDSHAKES_MAX). */
  #handshaking = new Map<string, number>();
  #handshakingTotal = 0;
  /** Per authenticated inbound connection: the key and sequence of frames back to its dialler (reports, pings), and the reports' timer. */
  #reportsTo = new WeakMap<Socket, { peer: NodeId; key: Uint8Array; seq: number; timer?: NodeJS.Timeout; send?: () => void; watch?: LinkWatch | undefined }>();
  #watched = new Set<WatchedLink>();
  #dials = new Set<{ peer: NodeId; socket: Socket; startedAt: number; onTimeout: () => void }>();
  #watchTimer: NodeJS.Timeout | undefined;
  /** When the armed liveness timer is due (monotonic ms), or null when none is armed. */
  #watchDueAt: number | null = null;
  #deliver: ((m: Message) => void) | undefined;
  #status: MemberStatusChannel | undefined;
  #closed = false;
  readonly counters = new Counters();
  readonly limiter = new LogLimiter();
  readonly channel: PeerChannel;
  /** With TLS: when this member's certificate and the CA end (ISO; the earliest CA of a bundle, of `cas`), for status and doctor. */
  readonly #tlsValidTo: { cert: string; ca: string; cas: number } | undefined;

  constructor(options: TransportOptions) {
    this.#o = options;
    this.#tlsValidTo = options.tls === undefined ? undefined : {
      cert: new Date(new X509Certificate(options.tls.cert).validTo).toISOString(),
      ca: bundleValidTo(options.tls.ca),
      cas: caBundle(options.tls.ca).length,
    };
    if (options.tls !== undefined) this.channel = tlsChannel(options.tls);
    else if (options.key !== undefined) this.channel = clusterKeyChannel(options.key);
    else throw new Error('the raft transport needs cluster.tls or a cluster key');
    for (const [id, addr] of Object.entries(options.peers)) {
      if (id !== options.self) this.#out.set(id, new Outbound(this, id, addr));
    }
  }

  get options(): TransportOptions { return this.#o; }
  /** The ping and dead-link timing in force, or null when liveness is off. */
  get liveness(): LinkLiveness | null { return this.#o.liveness === false ? null : (this.#o.liveness ?? DEFAULT_LIVENESS); }
  now(): number { return this.#o.clock ? this.#o.clock.monotonicMs() : performance.now(); }
  get closed(): boolean { return this.#closed; }
  get statusChannel(): MemberStatusChannel | undefined { return this.#status; }

  /** Sends this member's report to every dialler and hands theirs to `channel`. */
  attachMemberStatus(channel: MemberStatusChannel): void {
    this.#status = channel;
    channel.onSendNow?.(() => this.#reportNow());
    for (const socket of this.#inbound.values()) this.#startReports(socket);
  }

  /** Writes this member's report to every dialler now (a change a member waits on), besides the interval's. */
  #reportNow(): void {
    if (this.#closed) return;
    for (const socket of this.#inbound.values()) {
      const send = this.#reportsTo.get(socket)?.send;
      if (send === undefined) continue;
      send();
      this.counters.inc('status.sent-now');
    }
  }

  async start(deliver: (m: Message) => void): Promise<void> {
    this.#deliver = deliver;
    const server = createServer((socket) => this.#accept(socket));
    this.#server = server;
    await listenOn(server, { port: this.#o.listen.port, host: this.#o.listen.host });
    keepListening(server, {
      log: this.#o.log, count: () => this.counters.inc('accept-failed'), event: 'raft.accept_failed',
      what: `raft peer port ${this.#o.listen.host}:${this.#o.listen.port}`, limiter: this.limiter, nowMs: () => this.now(),
    });
    for (const peer of this.#out.values()) peer.connect();
  }

  /** Starts watching an authenticated link both ends of which offered pings; returns its watch. */
  watchLink(link: Omit<WatchedLink, 'watch'>): LinkWatch | undefined {
    const live = this.liveness;
    if (!live) return undefined;
    const watched: WatchedLink = { ...link, watch: new LinkWatch(live, this.now()) };
    this.#watched.add(watched);
    link.socket.once('close', () => this.#watched.delete(watched));
    this.#armWatch();
    return watched.watch;
  }

  /** Gives up a dial still short of an authenticated link after dialMs (calling onTimeout first); returns what ends the watch. */
  watchDial(peer: NodeId, socket: Socket, onTimeout: () => void): () => void {
    if (!this.liveness) return () => undefined;
    const dial = { peer, socket, startedAt: this.now(), onTimeout };
    this.#dials.add(dial);
    this.#armWatch();
    return () => { this.#dials.delete(dial); };
  }

  /**
   * Arms the one liveness timer for the earliest moment a link or dial can be due (LinkWatch.nextDueAt),
   * unless it is armed for then or earlier. Bytes sent or heard meanwhile only make that later: the
   * timer then finds nothing due and is armed again. Before, a poll every pingMs / 2 woke every
   * member 32 times a second whatever its links did (bench:idle).
   */
  #armWatch(): void {
    if (this.#closed) return;
    const dialMs = this.liveness?.dialMs ?? Infinity;
    let dueAt = Infinity;
    for (const dial of this.#dials) dueAt = Math.min(dueAt, dial.startedAt + dialMs + 1);
    for (const link of this.#watched) dueAt = Math.min(dueAt, link.watch.nextDueAt());
    if (dueAt === Infinity || (this.#watchDueAt !== null && this.#watchDueAt <= dueAt)) return;
    if (this.#watchTimer) clearTimeout(this.#watchTimer);
    this.#watchDueAt = dueAt;
    this.#watchTimer = setTimeout(() => {
      this.#watchTimer = undefined;
      this.#watchDueAt = null;
      this.#checkLinks();
      this.#armWatch();
    }, timerDelayMs(dueAt, this.now()));
    this.#watchTimer.unref();
  }

  /**
   * Pings idle links and closes silent ones. A link found silent is checked again after the poll
   * phase of this loop turn (setImmediate): after a pause of this process (GC, a stopped CPU) its
   * timers run before the bytes already waiting in the socket are read, and those count. A link
   * whose ping falls due within a quarter of pingMs is pinged now too: one wake-up for several links.
   */
  #checkLinks(): void {
    this.counters.inc('liveness.checks');
    const dialMs = this.liveness?.dialMs ?? Infinity;
    for (const dial of this.#dials) {
      if (this.now() - dial.startedAt <= dialMs) continue;
      this.#dials.delete(dial);
      this.counters.inc('dial-timeout');
      this.#o.log.debug({ event: 'raft.dial_timeout', peer: dial.peer, dialMs }, `no link with ${dial.peer} within ${dialMs} ms; dialling again`);
      dial.onTimeout();
      dial.socket.destroy();
    }
    for (const link of this.#watched) {
      const due = link.watch.due(this.now(), Math.floor(link.watch.timing.pingMs / 4));
      if (due === 'ping') link.ping();
      else if (due === 'dead') {
        setImmediate(() => {
          if (link.socket.destroyed || link.watch.due(this.now()) !== 'dead') return;
          const silentMs = Math.round(link.watch.silentMs(this.now()));
          this.counters.inc('link.dead');
          this.counters.inc(`link.dead.${link.direction}`);
          this.#o.log.debug({ event: 'raft.link_dead', peer: link.peer, direction: link.direction, silentMs, deadMs: link.watch.timing.deadMs },
            `closed the ${link.direction} link with ${link.peer}: nothing heard for ${silentMs} ms`);
          this.#watched.delete(link);
          link.socket.destroy();
        });
      }
    }
  }

  send(messages: Message[]): void {
    for (const m of messages) this.#out.get(m.to)?.enqueue(m);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#watchTimer) clearTimeout(this.#watchTimer);
    for (const p of this.#out.values()) p.close();
    for (const s of this.#accepted.values()) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  status(): Record<string, unknown> {
    return {
      listen: `${this.#o.listen.host}:${this.#o.listen.port}`,
      security: this.channel.mode,
      ...(this.#tlsValidTo ? { tlsValidTo: this.#tlsValidTo } : {}),
      peers: Object.fromEntries([...this.#out.entries()].map(([id, p]) => [id, { ...p.status(), inbound: this.#inbound.has(id) }])),
      counters: this.counters.toJSON(),
      /** Accepted connections still in their handshake (bounded by HANDSHAKES_MAX). */
      handshaking: this.#handshakingTotal,
      ...(this.liveness ? { liveness: this.liveness } : {}),
    };
  }

  /** Writes this member's report to a dialler now and every intervalMs (nothing without a channel). */
  #startReports(socket: Socket): void {
    const channel = this.#status;
    const to = this.#reportsTo.get(socket);
    if (channel === undefined || to === undefined || to.timer !== undefined || socket.destroyed) return;
    const { peer, key } = to;
    let first = true;
    const send = (): void => {
      if (socket.destroyed || socket.writableLength > STATUS_BACKLOG_MAX) return;
      socket.write(encodeFrame(FrameKind.status, ++to.seq, channel.outgoing(peer, first), key));
      to.watch?.sent(this.now());
      first = false;
      this.counters.inc('status.sent');
    };
    send();
    to.send = send;
    to.timer = setInterval(send, channel.intervalMs);
    to.timer.unref();
  }

  reject(reason: string, detail: Record<string, unknown>, socket: Socket): void {
    this.counters.inc(`rejected.${reason}`);
    if (this.limiter.allow(reason, performance.now())) {
      this.#o.log.warn({ event: 'raft.peer_rejected', reason, ...detail, remote: `${socket.remoteAddress}:${socket.remotePort}` }, `dropped a raft peer connection: ${reason}`);
    }
    socket.destroy();
  }

  #accept(raw: Socket): void {
    if (this.#closed) { raw.destroy(); return; }
    const source = raw.remoteAddress ?? '';
    const fromSource = this.#handshaking.get(source) ?? 0;
    if (fromSource >= HANDSHAKES_PER_SOURCE_MAX) return this.reject('handshakes-per-source', { handshaking: fromSource }, raw);
    if (this.#handshakingTotal >= HANDSHAKES_MAX) return this.reject('handshakes-full', { handshaking: this.#handshakingTotal }, raw);
    this.#handshaking.set(source, fromSource + 1);
    this.#handshakingTotal++;
    let handshaking = true;
    const handshakeOver = (): void => {
      if (!handshaking) return;
      handshaking = false;
      this.#handshakingTotal--;
      const n = (this.#handshaking.get(source) ?? 1) - 1;
      if (n <= 0) this.#handshaking.delete(source); else this.#handshaking.set(source, n);
    };
    this.#accepted.set(raw, raw);
    raw.setNoDelay(true);
    const o = this.#o;
    let buf: Buffer = Buffer.alloc(0);
    // 'channel' until the channel opens (at once for the cluster key, after the TLS handshake).
    let stage: 'channel' | 'hello' | 'proof' | 'ready' = 'channel';
    let peer = '';
    let nonceD: Uint8Array = new Uint8Array(0);
    const nonceL = randomBytes(32);
    let linkKey: Uint8Array = new Uint8Array(0);
    let macKey: Uint8Array = linkKey;
    let seq = 0;
    let pings = false;
    let watch: LinkWatch | undefined;
    // The socket frames are read from and written to: the accepted one, or the TLS socket over it.
    let socket: Socket = raw;
    const timer = setTimeout(() => { if (stage !== 'ready') this.reject('handshake-timeout', {}, socket); }, o.handshakeTimeoutMs ?? 5000);
    timer.unref();
    // Always the socket frames go over: destroying the connection under a live TLS socket and then
    // the TLS socket crashes Node (SIGSEGV, Node 20).
    raw.on('error', () => socket.destroy());
    raw.on('close', () => {
      handshakeOver();
      this.#accepted.delete(raw);
      clearTimeout(timer);
      const reports = this.#reportsTo.get(socket)?.timer;
      if (reports) clearInterval(reports);
      if (peer !== '' && this.#inbound.get(peer) === socket) this.#inbound.delete(peer);
    });
    const onData = (chunk: Buffer): void => {
      watch?.heard(this.now());
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const { frames, used, error } = splitFrames(buf, stage === 'ready' ? undefined : HANDSHAKE_FRAME_MAX);
      buf = buf.subarray(used);
      for (const f of frames) {
        if (socket.destroyed) return;
        if (this.#closed) { socket.destroy(); return; }
        if (stage === 'hello') {
          if (f.kind !== FrameKind.hello || !frameMacOk(f, linkKey)) return this.reject('bad-hello-mac', {}, socket);
          const h = decodeHello(f.payload);
          if (!h.ok) return this.reject('bad-hello', { offset: h.error.offset }, socket);
          if (h.value.clusterId !== o.clusterId) return this.reject('wrong-cluster', { clusterId: h.value.clusterId }, socket);
          if (!this.#out.has(h.value.member)) return this.reject('unknown-member', { member: h.value.member }, socket);
          const refusal = this.channel.vouch(socket, h.value.member);
          if (refusal) return this.reject(refusal.reason, refusal.detail, socket);
          peer = h.value.member;
          nonceD = h.value.nonce;
          pings = (f.seq & Feature.ping) !== 0;
          socket.write(Buffer.concat([
            encodeFrame(FrameKind.hello, FEATURES, encodeHello({ clusterId: o.clusterId, member: o.self, nonce: nonceL }), linkKey),
            encodeFrame(FrameKind.proof, 0, proof(linkKey, o.clusterId, o.self, peer, nonceL, nonceD), linkKey),
          ]));
          stage = 'proof';
        } else if (stage === 'proof') {
          if (f.kind !== FrameKind.proof || !frameMacOk(f, linkKey)) return this.reject('bad-proof-mac', { peer }, socket);
          if (!macEqual(f.payload, proof(linkKey, o.clusterId, peer, o.self, nonceD, nonceL))) return this.reject('bad-proof', { peer }, socket);
          stage = 'ready';
          clearTimeout(timer);
          handshakeOver();
          macKey = sessionKey(linkKey, o.clusterId, peer, nonceD, nonceL);
          this.#inbound.get(peer)?.destroy(); // a newer connection from the same peer wins
          this.#inbound.set(peer, socket);
          this.counters.inc('accepted');
          const back: { peer: NodeId; key: Uint8Array; seq: number; watch?: LinkWatch | undefined } = { peer, key: sessionKey(linkKey, o.clusterId, o.self, nonceL, nonceD), seq: 0 };
          this.#reportsTo.set(socket, back);
          if (pings) {
            const from = peer;
            watch = this.watchLink({
              peer: from, direction: 'inbound', socket,
              ping: () => {
                if (socket.destroyed) return;
                socket.write(encodeFrame(FrameKind.ping, ++back.seq, PING_PAYLOAD, back.key));
                back.watch?.sent(this.now());
                this.counters.inc('ping.sent');
              },
            });
            back.watch = watch;
          }
          this.#startReports(socket);
        } else {
          if ((f.kind !== FrameKind.raft && f.kind !== FrameKind.ping) || !frameMacOk(f, macKey)) return this.reject('bad-frame-mac', { peer }, socket);
          if (f.seq !== seq + 1) return this.reject('bad-sequence', { peer, seq: f.seq, expected: seq + 1 }, socket);
          seq = f.seq;
          if (f.kind === FrameKind.ping) { this.counters.inc('ping.received'); continue; }
          const m = decodeMessage(f.payload);
          if (!m.ok) return this.reject('bad-message', { peer, code: m.error.code, offset: m.error.offset }, socket);
          if (m.value.from !== peer || m.value.to !== o.self) return this.reject('misaddressed', { peer, from: m.value.from, to: m.value.to }, socket);
          this.counters.inc('received');
          this.#deliver?.(m.value);
        }
      }
      if (error) this.reject('bad-framing', { peer, offset: error.offset, problem: error.problem }, socket);
    };
    this.channel.accept(raw, {
      open: (key, channelSocket) => {
        if (stage !== 'channel' || raw.destroyed) { channelSocket.destroy(); return; }
        socket = channelSocket;
        this.#accepted.set(raw, socket);
        linkKey = key;
        stage = 'hello';
        socket.on('data', onData);
      },
      refuse: (reason, detail, drop) => this.reject(reason, detail, drop ?? socket),
    });
  }
}

class Outbound {
  #t: Transport;
  #id: NodeId;
  #addr: PeerAddress;
  #socket: Socket | undefined;
  #ready = false;
  #queue: Message[] = [];
  #flushScheduled = false;
  #draining = false;
  #seq = 0;
  #macKey: Uint8Array = new Uint8Array(0);
  #backoff = BACKOFF_MIN_MS;
  #retry: NodeJS.Timeout | undefined;
  #sent = 0;
  #dropped = 0;
  #connects = 0;
  #watch: LinkWatch | undefined;

  constructor(t: Transport, id: NodeId, addr: PeerAddress) {
    this.#t = t;
    this.#id = id;
    this.#addr = addr;
  }

  status(): Record<string, unknown> {
    return { address: `${this.#addr.host}:${this.#addr.port}`, connected: this.#ready, queued: this.#queue.length, sent: this.#sent, dropped: this.#dropped, connects: this.#connects };
  }

  enqueue(m: Message): void {
    if (!this.#ready) { this.#dropped++; return; } // nobody to send to: Raft resends what matters
    const max = this.#t.options.maxQueue ?? 4096;
    if (this.#queue.length >= max) { this.#queue.shift(); this.#dropped++; }
    this.#queue.push(m);
    if (!this.#flushScheduled && !this.#draining) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  connect(): void {
    if (this.#t.closed) return;
    const o = this.#t.options;
    const nonceD = randomBytes(32);
    let linkKey: Uint8Array = new Uint8Array(0);
    const socket = this.#t.channel.dial(this.#id, this.#addr, {
      open: (key) => {
        linkKey = key;
        socket.write(encodeFrame(FrameKind.hello, FEATURES, encodeHello({ clusterId: o.clusterId, member: o.self, nonce: nonceD }), key));
      },
      refuse: (reason, detail) => fail(reason, detail),
    });
    this.#socket = socket;
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'hello' | 'proof' | 'ready' = 'hello';
    let nonceL: Uint8Array = new Uint8Array(0);
    let statusKey: Uint8Array = new Uint8Array(0);
    let statusSeq = 0;
    let pings = false;
    this.#watch = undefined;
    const fail = (reason: string, detail: Record<string, unknown> = {}): void => this.#t.reject(reason, { peer: this.#id, ...detail }, socket);
    // A dial still short of an authenticated link after dialMs is given up (a SYN or hello lost in
    // a cut would otherwise wait for TCP's retransmissions) and retried without further back-off:
    // it has waited already, and the back-off is there for peers that refuse at once.
    const endDial = this.#t.watchDial(this.#id, socket, () => { this.#backoff = BACKOFF_MIN_MS; });
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket === socket) this.#watch?.heard(this.#t.now());
      // After the handshake a listener sends only its member reports (members before the reports
      // existed dropped these bytes unread); without a channel yet they are checked and dropped.
      const channel = this.#t.statusChannel;
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const { frames, used, error } = splitFrames(buf, stage === 'ready' ? STATUS_FRAME_MAX : HANDSHAKE_FRAME_MAX);
      buf = buf.subarray(used);
      for (const f of frames as Frame[]) {
        if (socket.destroyed) return;
        if (stage === 'ready') {
          if ((f.kind !== FrameKind.status && f.kind !== FrameKind.ping) || !frameMacOk(f, statusKey)) return fail('bad-status-mac');
          if (f.seq !== statusSeq + 1) return fail('bad-status-sequence', { seq: f.seq, expected: statusSeq + 1 });
          statusSeq = f.seq;
          if (f.kind === FrameKind.ping) { this.#t.counters.inc('ping.received'); continue; }
          this.#t.counters.inc('status.received');
          channel?.incoming(this.#id, f.payload);
        } else if (stage === 'hello') {
          if (f.kind !== FrameKind.hello || !frameMacOk(f, linkKey)) return fail('bad-hello-mac');
          const h = decodeHello(f.payload);
          if (!h.ok || h.value.clusterId !== o.clusterId || h.value.member !== this.#id) return fail('wrong-peer', h.ok ? { member: h.value.member, clusterId: h.value.clusterId } : {});
          nonceL = h.value.nonce;
          pings = (f.seq & Feature.ping) !== 0;
          stage = 'proof';
        } else if (stage === 'proof') {
          if (f.kind !== FrameKind.proof || !frameMacOk(f, linkKey)) return fail('bad-proof-mac');
          if (!macEqual(f.payload, proof(linkKey, o.clusterId, this.#id, o.self, nonceL, nonceD))) return fail('bad-proof');
          socket.write(encodeFrame(FrameKind.proof, 0, proof(linkKey, o.clusterId, o.self, this.#id, nonceD, nonceL), linkKey));
          this.#macKey = sessionKey(linkKey, o.clusterId, o.self, nonceD, nonceL);
          statusKey = sessionKey(linkKey, o.clusterId, this.#id, nonceL, nonceD);
          this.#seq = 0;
          stage = 'ready';
          this.#ready = true;
          this.#backoff = BACKOFF_MIN_MS;
          this.#connects++;
          endDial();
          if (pings) this.#watch = this.#t.watchLink({ peer: this.#id, direction: 'outbound', socket, ping: () => this.#ping(socket) });
        }
      }
      if (error) fail('bad-framing', { offset: error.offset, problem: error.problem });
    });
    socket.on('drain', () => { this.#draining = false; this.#flush(); });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      endDial();
      if (this.#socket !== socket) return;
      this.#ready = false;
      this.#watch = undefined;
      this.#socket = undefined;
      this.#dropped += this.#queue.length;
      this.#queue = [];
      this.#draining = false;
      if (this.#t.closed) return;
      const wait = this.#backoff + Math.floor(Math.random() * this.#backoff);
      this.#backoff = Math.min(BACKOFF_MAX_MS, this.#backoff * 2);
      this.#retry = setTimeout(() => this.connect(), wait);
      this.#retry.unref();
    });
  }

  close(): void {
    if (this.#retry) clearTimeout(this.#retry);
    this.#socket?.destroy();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const socket = this.#socket;
    if (!socket || !this.#ready || this.#queue.length === 0) return;
    const frames = this.#queue.map((m) => encodeFrame(FrameKind.raft, ++this.#seq, encodeMessage(m), this.#macKey));
    this.#sent += this.#queue.length;
    this.#queue = [];
    if (!socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames))) this.#draining = true;
    this.#watch?.sent(this.#t.now());
  }

  /** An empty frame on the Raft sequence: the listener hears the link is alive. */
  #ping(socket: Socket): void {
    if (socket !== this.#socket || !this.#ready || socket.destroyed) return;
    socket.write(encodeFrame(FrameKind.ping, ++this.#seq, PING_PAYLOAD, this.#macKey));
    this.#watch?.sent(this.#t.now());
    this.#t.counters.inc('ping.sent');
  }
}
