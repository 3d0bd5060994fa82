import { admit, headerReply } from './admit.js';
import { asciiLower } from './name.js';
import {
  CLASS_CH, CLASS_IN, EDNS_OPT_NSID, RCODE, T, UDP_PAYLOAD_MAX, decodeMessage, emptyMessage, encodeMessage,
  type DnsMessage, type DnsRecord, type Edns, type Question,
} from './wire.js';
import type { Answer, ZoneSet } from './zone.js';

// The request handler core: bytes of one query + what the shell knows about its source -> what to
// do. Pure: no sockets, no clock. The shell (server.ts) answers most queries from prebuilt bytes
// and comes here the first time it sees a question, for EDNS options, and for everything odd.

export type Transport = 'udp' | 'tcp';

export interface HandlerContext {
  zones: ZoneSet;
  /** Node name for NSID (RFC 5001) and CH TXT id.server (RFC 4892). */
  nodeName: string;
  /** The source may use forwarding (inside the configured LAN prefixes, and forwarding is on). */
  forwardAllowed: boolean;
  /** The source may transfer whole zones (inside `transfer.allow`). */
  transferAllowed?: boolean;
  transport: Transport;
}

export type Decision =
  | { kind: 'drop'; reason: string }
  /** `cacheable`: an authoritative answer that depends only on the question (the shell prebuilds it). */
  | { kind: 'reply'; bytes: Uint8Array; rcode: number; reason?: string; cacheable?: { query: DnsMessage; answer: Answer } }
  /**
   * `chain`: the CNAME records of our zones that lead to `question` (asked for another name); the
   * asker gets them before the forwarded answer.
   */
  | { kind: 'forward'; query: DnsMessage; question: Question; chain?: DnsRecord[] }
  /** A zone transfer over TCP: the messages in order. */
  | { kind: 'transfer'; zone: string; messages: Uint8Array[]; records: number };

/** The largest reply the source may get: 512 without EDNS, the advertised size capped at 1232 with it. */
export function replyLimit(query: Pick<DnsMessage, 'edns'> | null, transport: Transport): number {
  if (transport === 'tcp') return 65535;
  if (query === null || query.edns === null) return 512;
  return Math.min(UDP_PAYLOAD_MAX, Math.max(512, query.edns.udpSize));
}

export function handleQuery(msg: Uint8Array, ctx: HandlerContext): Decision {
  const gate = admit(msg);
  if (gate.kind === 'ignore') return { kind: 'drop', reason: gate.reason };
  if (gate.kind === 'reject') return { kind: 'reply', bytes: headerReply(msg, gate.rcode), rcode: gate.rcode, reason: gate.reason };
  const d = decodeMessage(msg);
  if (!d.ok) return { kind: 'reply', bytes: headerReply(msg, RCODE.FORMERR), rcode: RCODE.FORMERR, reason: d.error.code };
  const query = d.value;
  const q = query.questions[0]!;
  if (query.edns !== null && query.edns.version > 0) {
    return reply(query, ctx, { rcode: RCODE.BADVERS, answers: [], authority: [], additional: [] }, false, 'badvers');
  }
  if (q.class === CLASS_CH) {
    const key = asciiLower(q.name);
    if (q.type === T.TXT && (key === 'id.server' || key === 'hostname.bind')) {
      const text = new TextEncoder().encode(ctx.nodeName).slice(0, 255);
      const rdata = new Uint8Array(text.length + 1);
      rdata[0] = text.length;
      rdata.set(text, 1);
      return reply(query, ctx, { rcode: 0, answers: [{ name: q.name, type: T.TXT, class: CLASS_CH, ttl: 0, rdata }], authority: [], additional: [] }, true);
    }
    return reply(query, ctx, refused(), false, 'class');
  }
  if (q.class !== CLASS_IN && q.class !== 255) return reply(query, ctx, refused(), false, 'class');
  if (q.type === T.AXFR || q.type === T.IXFR) return transfer(query, ctx);
  if (q.type === T.OPT) return reply(query, ctx, refused(), false, 'qtype-opt');
  const answer = ctx.zones.resolve(q.name, q.type);
  if (answer?.chainOut !== undefined) {
    // A stub resolver (glibc, musl) does not chase a CNAME itself: the server it asks must hand over
    // the whole chain, as a recursive BIND does. Never prebuilt: an asker that may forward gets more.
    if (ctx.forwardAllowed) return { kind: 'forward', query, question: { name: answer.chainOut, type: q.type, class: q.class }, chain: answer.answers };
    return reply(query, ctx, answer, true);
  }
  if (answer !== null) {
    const r = reply(query, ctx, answer, true);
    return { ...r, cacheable: { query, answer } };
  }
  if (ctx.forwardAllowed) return { kind: 'forward', query, question: q };
  return reply(query, ctx, refused(), false, 'not-ours');
}

/** Records per transfer message are added while their uncompressed size stays under this. */
const TRANSFER_MESSAGE_BYTES = 16_000;

/**
 * AXFR (RFC 5936) and IXFR (RFC 1995) of one of our zones, for allowed sources only. There is no
 * change history, so IXFR gets the whole zone as AXFR does (RFC 1995 §4 allows it); over UDP an
 * IXFR gets the SOA alone (the asker then comes over TCP) and an AXFR is refused (it is TCP-only).
 */
function transfer(query: DnsMessage, ctx: HandlerContext): Decision {
  const q = query.questions[0]!;
  if (ctx.transferAllowed !== true) return reply(query, ctx, refused(), false, 'xfr-refused');
  const records = ctx.zones.transfer(q.name);
  if (records === null) return reply(query, ctx, { rcode: RCODE.NOTAUTH, answers: [], authority: [], additional: [] }, false, 'xfr-notauth');
  if (ctx.transport === 'udp') {
    if (q.type === T.IXFR) return reply(query, ctx, { rcode: RCODE.NOERROR, answers: [records[0]!], authority: [], additional: [] }, true);
    return reply(query, ctx, refused(), false, 'xfr-udp');
  }
  const messages: Uint8Array[] = [];
  let batch: DnsRecord[] = [];
  let size = 0;
  const flush = (): void => {
    const m = responseMessage(query, { nodeName: ctx.nodeName, forwardAllowed: ctx.forwardAllowed }, { rcode: RCODE.NOERROR, answers: batch, authority: [], additional: [] }, true);
    // The question goes in the first message only (RFC 5936 §2.2.1); the OPT, if any, in each.
    if (messages.length > 0) m.questions = [];
    messages.push(encodeMessage(m).bytes);
    batch = [];
    size = 0;
  };
  for (const r of records) {
    const bytes = r.name.length + 2 + 10 + r.rdata.length;
    if (batch.length > 0 && size + bytes > TRANSFER_MESSAGE_BYTES) flush();
    batch.push(r);
    size += bytes;
  }
  flush();
  return { kind: 'transfer', zone: records[0]!.name, messages, records: records.length };
}

function refused(): Answer {
  return { rcode: RCODE.REFUSED, answers: [], authority: [], additional: [] };
}

/** The response message for `query` with these sections (OPT echoed, NSID when asked). */
export function responseMessage(query: DnsMessage, ctx: Pick<HandlerContext, 'nodeName' | 'forwardAllowed'>, answer: Answer, authoritative: boolean): DnsMessage {
  const m = emptyMessage(query.id);
  m.qr = true;
  m.opcode = query.opcode;
  m.aa = authoritative;
  m.rd = query.rd;
  m.ra = ctx.forwardAllowed;
  m.rcode = answer.rcode;
  m.questions = query.questions.slice(0, 1);
  m.answers = answer.answers;
  m.authority = answer.authority;
  m.additional = answer.additional;
  if (query.edns !== null) {
    // DO copied from the query (RFC 3225 §3); we sign nothing, so no RRSIG follows either way.
    const edns: Edns = { udpSize: UDP_PAYLOAD_MAX, extendedRcode: 0, version: 0, dnssecOk: query.edns.dnssecOk, options: [] };
    if (query.edns.options.some((o) => o.code === EDNS_OPT_NSID)) edns.options.push({ code: EDNS_OPT_NSID, data: new TextEncoder().encode(ctx.nodeName) });
    m.edns = edns;
  }
  return m;
}

function reply(query: DnsMessage, ctx: HandlerContext, answer: Answer, authoritative: boolean, reason?: string): Decision & { kind: 'reply' } {
  const m = responseMessage(query, ctx, answer, authoritative);
  const { bytes } = encodeMessage(m, replyLimit(query, ctx.transport));
  return reason === undefined ? { kind: 'reply', bytes, rcode: answer.rcode } : { kind: 'reply', bytes, rcode: answer.rcode, reason };
}

/**
 * Encodes a forwarded answer for the client that asked; `chain`: our CNAME records that led to the
 * forwarded name, answered first (RFC 6604: the RCODE is the last name's).
 */
export function forwardedReply(query: DnsMessage, ctx: Pick<HandlerContext, 'nodeName' | 'transport'>, rcode: number, answers: DnsRecord[], authority: DnsRecord[], additional: DnsRecord[], chain?: DnsRecord[]): Uint8Array {
  const all = chain === undefined ? answers : [...chain, ...answers];
  const m = responseMessage(query, { nodeName: ctx.nodeName, forwardAllowed: true }, { rcode, answers: all, authority, additional }, false);
  return encodeMessage(m, replyLimit(query, ctx.transport)).bytes;
}

/**
 * The prebuilt form of an authoritative answer for the fast path: no OPT, RD and RA clear, ID 0,
 * not truncated (fast.ts adds the OPT and picks the truncated form per asker).
 */
export function prebuiltAnswer(query: DnsMessage, answer: Answer): Uint8Array {
  const m = responseMessage({ ...query, id: 0, rd: false, edns: null }, { nodeName: '', forwardAllowed: false }, answer, true);
  return encodeMessage(m, 65535).bytes;
}
