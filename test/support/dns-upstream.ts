import { CLASS_IN, T, decodeMessage, emptyMessage, encodeMessage } from '../../services/dns/wire.js';

/** What a test upstream answers to `query`: its question with one A record (`ttl`, `address`); null when it does not decode. */
export function answerA(query: Uint8Array, ttl: number, address: readonly number[]): Uint8Array | null {
  const d = decodeMessage(query);
  if (!d.ok) return null;
  const r = emptyMessage(d.value.id);
  r.qr = true; r.rd = true; r.ra = true;
  r.questions = d.value.questions;
  r.answers = [{ name: d.value.questions[0]!.name, type: T.A, class: CLASS_IN, ttl, rdata: Uint8Array.from(address) }];
  return encodeMessage(r).bytes;
}
