import type { Message, NodeId, PeerLink } from '../../cluster/raft/types.js';

// An in-memory PeerLink hub for in-process Raft members: messages to a member that is linked are
// delivered on a later turn of the event loop (never re-entrantly); to one that is not, dropped.

export class MemoryHub {
  #members = new Map<NodeId, (m: Message) => void>();

  link(id: NodeId): PeerLink {
    return {
      send: (messages) => {
        for (const m of messages) {
          setImmediate(() => {
            if (!this.#members.has(id)) return; // the sender closed meanwhile
            this.#members.get(m.to)?.(m);
          });
        }
      },
      start: async (deliver) => { this.#members.set(id, deliver); },
      close: async () => { this.#members.delete(id); },
    };
  }
}
