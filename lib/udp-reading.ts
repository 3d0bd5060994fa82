// Stopping and restarting a bound dgram socket's reads without closing it. A socket handed to a
// child process over IPC is one kernel socket with a descriptor in each process; if both read it,
// every datagram wakes both (the kernel wakes every waiter; one gets the datagram, the other finds
// nothing). The process that handed the socket over stops reading once the child serves it, keeps
// the descriptor (the address stays bound, replies can still leave from it) and reads again the
// moment the child is gone, with no rebind and no datagram lost from the queue.
//
// Node 20 has no public call for this (no pause for dgram, no SO_REUSEPORT): the bound handle's
// recvStop/recvStart (libuv's uv_udp_recv_stop/start) are reached through the socket's internal
// state. Where that shape is missing (another Node), `setReading` says so and the socket keeps
// reading: the old behaviour, both processes woken.

import type dgram from 'node:dgram';

interface UdpHandle {
  recvStart(): number;
  recvStop(): number;
  /** How dgram resolves a send's destination (lookup4/lookup6 bound to the socket's `lookup`). */
  lookup: (address: string, callback: (err: Error | null, address: string) => void) => void;
}

interface DgramState {
  handle: UdpHandle | null;
  receiving: boolean;
}

/** The socket's internal state (its libuv handle), or null where this Node does not have that shape. */
export function dgramState(socket: dgram.Socket): DgramState | null {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (sym === undefined) return null;
  const state = (socket as unknown as Record<symbol, unknown>)[sym] as Partial<DgramState> | undefined;
  const handle = state?.handle;
  if (handle == null || typeof handle.recvStop !== 'function' || typeof handle.recvStart !== 'function') return null;
  return state as DgramState;
}

/**
 * Stops (`reading` false) or restarts reading a bound socket. Returns whether the socket now reads
 * as asked; false when this Node does not expose the handle (the socket then keeps reading) or the
 * socket is closed or not yet bound.
 */
export function setReading(socket: dgram.Socket, reading: boolean): boolean {
  const state = dgramState(socket);
  if (state === null || !state.receiving) return reading && state !== null;
  try {
    return (reading ? state.handle!.recvStart() : state.handle!.recvStop()) === 0;
  } catch {
    return false;
  }
}
