import type { ConfChange } from './types.js';

// Membership-change entries: small JSON, versioned like the commands.

export function encodeConfChange(change: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: 1, ...change }));
}

export function decodeConfChange(bytes: Uint8Array): ConfChange | undefined {
  try {
    const o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as { v?: unknown; type?: unknown; id?: unknown; witness?: unknown };
    if (o.v !== 1 || typeof o.id !== 'string') return undefined;
    if (o.type === 'add-learner') return o.witness === true ? { type: 'add-learner', id: o.id, witness: true } : { type: 'add-learner', id: o.id };
    if (o.type === 'promote' || o.type === 'remove') return { type: o.type, id: o.id };
    return undefined;
  } catch {
    return undefined;
  }
}
