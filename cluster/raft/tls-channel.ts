import { Server as TlsServer, TLSSocket, connect as tlsConnect, createSecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import type { ChannelEvents, PeerChannel } from './transport-channel.js';
import { peerRefusal, type TlsMaterial } from './tls.js';

// The TLS channel of the peer transport (`cluster.tls`): TLS 1.3 only, both ends present a
// certificate the cluster CA signed and refuse one it did not, and a certificate speaks only for
// the member its DNS SAN names (and, when pinned, only with its pinned SHA-256): a dialler checks
// the member it dialled, a listener the member a hello claims. Host names are not checked (members
// are named by the config, not by DNS).
// The listener side is a tls.Server that never listens: the transport's own net.Server accepts (so
// its per-source and total bounds on unfinished handshakes cover TLS handshakes too) and hands each
// connection over. The server asks for a certificate (requestCert); the check rejectUnauthorized
// would make is made here, on socket.authorized, because Node's drops the connection silently and
// a refusal must be counted and logged.

/** RFC 5705 / RFC 8446 §7.5 exporter label; the handshake and frame MACs are keyed from its output. */
const EXPORTER_LABEL = 'EXPERIMENTAL lanha raft link';
const EXPORTED_BYTES = 32;

/** A TLS error's refusal reason: the peer's certificate failed the chain checks, or the handshake failed. */
function tlsRefusal(error: Error & { code?: string }): { reason: string; detail: Record<string, unknown> } {
  const code = error.code ?? 'unknown';
  const chain = /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|INVALID_|ERR_SSL_.*(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_EXPIRED|UNSUPPORTED_CERTIFICATE))/.test(code);
  return { reason: chain ? 'tls-unauthorized' : 'tls-handshake', detail: { code, error: error.message } };
}

function exported(socket: TLSSocket): Uint8Array {
  return socket.exportKeyingMaterial(EXPORTED_BYTES, EXPORTER_LABEL, Buffer.alloc(0));
}

const connectionKey = (socket: Socket): string => `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;

export function tlsChannel(material: TlsMaterial): PeerChannel {
  const context = createSecureContext({ ca: material.ca, cert: material.cert, key: material.key, minVersion: 'TLSv1.3' });
  // Accepted connections in their TLS handshake, by remote address and port (the TLS socket the
  // server makes over a connection reports the same).
  const handshaking = new Map<string, { events: ChannelEvents; raw: Socket }>();
  const server = new TlsServer({ ca: material.ca, cert: material.cert, key: material.key, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false });
  const take = (socket: TLSSocket): ChannelEvents | undefined => {
    const key = connectionKey(socket);
    const entry = handshaking.get(key);
    handshaking.delete(key);
    return entry?.events;
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    const events = take(socket);
    if (events === undefined) { socket.destroy(); return; }
    if (!socket.authorized) {
      events.refuse('tls-unauthorized', { code: String(socket.authorizationError ?? 'NO_PEER_CERTIFICATE') }, socket);
      return;
    }
    socket.on('error', () => socket.destroy());
    events.open(exported(socket), socket);
  });
  server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
    const entry = handshaking.get(connectionKey(socket));
    take(socket);
    // The transport already dropped the connection under it (handshake timeout, close()): the TLS
    // socket ends with it; counted once, and not destroyed a second time.
    if (entry?.raw.destroyed === true) return;
    const { reason, detail } = tlsRefusal(error);
    if (entry) entry.events.refuse(reason, detail, socket); else socket.destroy();
  });
  return {
    mode: 'tls',
    dial(peer, address, events) {
      let connected = false;
      let settled = false;
      const socket = tlsConnect({
        host: address.host, port: address.port, secureContext: context, minVersion: 'TLSv1.3',
        rejectUnauthorized: true,
        checkServerIdentity: () => undefined, // the member name is checked below, against the SAN
      });
      socket.once('connect', () => { connected = true; });
      // A refused TCP connect is a peer down, not a TLS failure: only errors after it count.
      socket.on('error', (error: Error & { code?: string }) => {
        if (settled || !connected) return;
        settled = true;
        const { reason, detail } = tlsRefusal(error);
        events.refuse(reason, detail);
      });
      socket.once('secureConnect', () => {
        settled = true;
        const cert = socket.getPeerX509Certificate();
        const refusal = cert === undefined ? { reason: 'tls-unauthorized', detail: { code: 'NO_PEER_CERTIFICATE' } } : peerRefusal(cert, peer, material.pins);
        if (refusal) events.refuse(refusal.reason, refusal.detail);
        else events.open(exported(socket), socket);
      });
      return socket;
    },
    accept(raw, events) {
      const key = connectionKey(raw);
      const entry = { events, raw };
      handshaking.set(key, entry);
      raw.once('close', () => { if (handshaking.get(key) === entry) handshaking.delete(key); });
      server.emit('connection', raw);
    },
    vouch(socket: Socket, member) {
      const cert = socket instanceof TLSSocket ? socket.getPeerX509Certificate() : undefined;
      if (cert === undefined) return { reason: 'tls-unauthorized', detail: { code: 'NO_PEER_CERTIFICATE', member } };
      return peerRefusal(cert, member, material.pins);
    },
  };
}
