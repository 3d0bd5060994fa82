import { createConnection, type Socket } from 'node:net';
import type { NodeId } from './types.js';

// The seam between the transport and how a peer link is secured. The transport owns framing, the
// hello/proof handshake, queues and liveness for every link; a channel gives it the socket to speak
// on and the key that handshake is keyed with, once the link can carry bytes:
// - the cluster key (`cluster.keyFile`): plain TCP, the shared key itself;
// - TLS (`cluster.tls`, tls-channel.ts): TLS 1.3 with certificates from the cluster CA both ways,
//   and a key exported from the TLS session (RFC 8446 §7.5), so the handshake proves both ends hold
//   the same session and the frame MACs stay one code path.

export interface PeerAddress { host: string; port: number }

/** What a channel tells the transport about one connection. */
export interface ChannelEvents {
  /** The link carries bytes now, on `socket`; the hello, proof and frame MACs are keyed from `key`. */
  open(key: Uint8Array, socket: Socket): void;
  /**
   * The link failed its channel checks before it opened; the transport counts, logs (rate-limited) and
   * drops it: `socket` when given (a TLS socket over the accepted one: that one must be destroyed, not
   * the connection under it), else the socket it has.
   */
  refuse(reason: string, detail: Record<string, unknown>, socket?: Socket): void;
}

/** Why a link may not speak for a member. */
export interface ChannelRefusal { reason: string; detail: Record<string, unknown> }

export interface PeerChannel {
  readonly mode: 'cluster-key' | 'tls';
  /** Dials `peer` at `address`; returns the socket to speak on. */
  dial(peer: NodeId, address: PeerAddress, events: ChannelEvents): Socket;
  /** Takes an accepted TCP connection; `open` hands over the socket to speak on (the same one, or a TLS socket over it). */
  accept(socket: Socket, events: ChannelEvents): void;
  /** Whether an accepted link may speak for the member its hello names (its certificate), or why not. */
  vouch(socket: Socket, member: NodeId): ChannelRefusal | null;
}

/** Plain TCP; the shared cluster key proves both ends (the hello/proof handshake). */
export function clusterKeyChannel(key: Uint8Array): PeerChannel {
  return {
    mode: 'cluster-key',
    dial(_peer, address, events) {
      const socket = createConnection({ host: address.host, port: address.port });
      socket.once('connect', () => events.open(key, socket));
      return socket;
    },
    accept(socket, events) {
      // After the caller has attached its handlers; no byte can be read before then.
      queueMicrotask(() => events.open(key, socket));
    },
    vouch: () => null,
  };
}
