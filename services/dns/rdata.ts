import { isIPv4, isIPv6 } from 'node:net';
import { encodeName, nameProblem, readName } from './name.js';
import { T, concat, typeFromName, typeName } from './wire.js';

// Zone-file text <-> RDATA bytes for the types lanha serves (RFC 1035 §5 master-file syntax, one
// record a line): "www 300 IN A 10.0.0.5", "@ MX 10 mail", "_ntp._udp SRV 0 0 123 lan-a",
// "@ TXT "two" "strings"". Relative names are completed with the zone's origin, "@" is the origin.

export interface TextRecord {
  /** Absolute owner name, lowercase, no trailing dot. */
  name: string;
  type: number;
  ttl: number | undefined;
  rdata: Uint8Array;
}

export type ParseResult = { ok: true; value: TextRecord } | { ok: false; error: string };

/** Splits a zone-file line into fields; quoted strings stay one field (quotes kept). */
export function tokenize(line: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') { i++; continue; }
    if (c === ';') break;
    if (c === '"') {
      let j = i + 1;
      let s = '"';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length) { s += line[j]! + line[j + 1]!; j += 2; continue; }
        s += line[j++]!;
      }
      if (j >= line.length) return null;
      out.push(s + '"');
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < line.length && line[j] !== ' ' && line[j] !== '\t') j++;
    out.push(line.slice(i, j));
    i = j;
  }
  return out;
}

/** True when `text` holds a ";" outside quoted strings: a zone-file comment would cut it short. */
export function hasComment(text: string): boolean {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') { i++; continue; }
    if (c === '"') quoted = !quoted;
    else if (c === ';' && !quoted) return true;
  }
  return false;
}

/** Completes a name from a zone file: "@" = origin, no trailing dot = relative. Lowercase result. */
export function absoluteName(text: string, origin: string): string {
  if (text === '@') return origin;
  if (text.endsWith('.')) return text.slice(0, -1).toLowerCase();
  return (origin === '' ? text : `${text}.${origin}`).toLowerCase();
}

/**
 * The name a record points at: NS and CNAME targets, a PTR's name, a SOA's MNAME, an MX's exchange,
 * an SRV's target; lower case, no trailing dot. Null for other types and for the root (SRV ".").
 */
export function recordTarget(type: number, rdata: Uint8Array): string | null {
  const at = type === T.NS || type === T.CNAME || type === T.PTR || type === T.SOA ? 0 : type === T.MX ? 2 : type === T.SRV ? 6 : -1;
  const read = at < 0 ? null : readName(rdata, at);
  const name = read === null ? '' : read.name.toLowerCase().replace(/\.$/, '');
  return name === '' ? null : name;
}

export function parseRecordLine(line: string, origin: string): ParseResult {
  const f = tokenize(line.trim());
  if (f === null) return { ok: false, error: 'has an unterminated quoted string' };
  if (f.length < 3) return { ok: false, error: 'is not a record like "name [ttl] [IN] TYPE data"' };
  const owner = f.shift()!;
  let ttl: number | undefined;
  if (/^\d+$/.test(f[0]!)) ttl = Number(f.shift());
  if (f[0]?.toUpperCase() === 'IN') f.shift();
  if (ttl === undefined && f[0] !== undefined && /^\d+$/.test(f[0])) ttl = Number(f.shift());
  const typeText = f.shift();
  if (typeText === undefined) return { ok: false, error: 'has no record type' };
  const type = typeFromName(typeText);
  if (type === null || type === T.OPT || type === T.ANY || type === T.AXFR || type === T.IXFR) return { ok: false, error: `has an unknown record type "${typeText}"` };
  const name = absoluteName(owner, origin);
  const problem = nameProblem(name);
  if (problem !== null) return { ok: false, error: `has an owner name "${owner}" that ${problem}` };
  if (ttl !== undefined && ttl > 0x7fffffff) return { ok: false, error: 'has a TTL above 2^31-1' };
  try {
    const rdata = encodeRdata(type, f, origin);
    return { ok: true, value: { name, type, ttl, rdata } };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

function need(fields: readonly string[], count: number, what: string): void {
  if (fields.length !== count) throw new Error(`is not ${what}`);
}

function u16(text: string): Uint8Array {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new Error(`has "${text}" where a number 0..65535 belongs`);
  return Uint8Array.of(Number(text) >> 8, Number(text) & 0xff);
}

function u32(text: string): Uint8Array {
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff) throw new Error(`has "${text}" where a 32-bit number belongs`);
  const n = Number(text);
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function nameField(text: string, origin: string): Uint8Array {
  const problem = nameProblem(absoluteName(text, origin));
  if (problem !== null) throw new Error(`has a name "${text}" that ${problem}`);
  try {
    return encodeName(absoluteName(text, origin));
  } catch {
    throw new Error(`has an invalid name "${text}"`);
  }
}

export function ipv6Bytes(text: string): Uint8Array | null {
  if (!isIPv6(text)) return null;
  let [head, tail] = text.split('::') as [string, string | undefined];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  const toGroups = (s: string | undefined): string[] => (s === undefined || s === '' ? [] : s.split(':'));
  let hg = toGroups(head), tg = toGroups(tail);
  const groupsOfV4 = (g: string[]): string[] => {
    const last = g[g.length - 1];
    if (v4 && last !== undefined && last.includes('.')) {
      const o = last.split('.').map(Number);
      return [...g.slice(0, -1), ((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16)];
    }
    return g;
  };
  if (tail === undefined) hg = groupsOfV4(hg); else tg = groupsOfV4(tg);
  const fill = tail === undefined ? [] : Array<string>(8 - hg.length - tg.length).fill('0');
  const all = [...hg, ...fill, ...tg];
  if (all.length !== 8) return null;
  const out = new Uint8Array(16);
  all.forEach((g, i) => { const n = parseInt(g, 16); out[2 * i] = n >> 8; out[2 * i + 1] = n & 0xff; });
  void head;
  return out;
}

function characterStrings(fields: readonly string[]): Uint8Array {
  if (fields.length === 0) throw new Error('is not TXT data (one or more strings)');
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    const text = f.startsWith('"') ? f.slice(1, -1).replace(/\\(.)/g, '$1') : f;
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > 255) throw new Error('has a TXT string longer than 255 bytes (split it into several quoted strings)');
    parts.push(Uint8Array.of(bytes.length), bytes);
  }
  return concat(parts);
}

export function encodeRdata(type: number, f: readonly string[], origin: string): Uint8Array {
  switch (type) {
    case T.A:
      need(f, 1, 'an IPv4 address');
      if (!isIPv4(f[0]!)) throw new Error(`has "${f[0]}" which is not an IPv4 address`);
      return Uint8Array.from(f[0]!.split('.').map(Number));
    case T.AAAA: {
      need(f, 1, 'an IPv6 address');
      const b = ipv6Bytes(f[0]!);
      if (b === null) throw new Error(`has "${f[0]}" which is not an IPv6 address`);
      return b;
    }
    case T.NS: case T.CNAME: case T.PTR:
      need(f, 1, `a ${typeName(type)} target name`);
      return nameField(f[0]!, origin);
    case T.MX:
      need(f, 2, 'MX data "preference exchange"');
      return concat([u16(f[0]!), nameField(f[1]!, origin)]);
    case T.SRV:
      need(f, 4, 'SRV data "priority weight port target"');
      return concat([u16(f[0]!), u16(f[1]!), u16(f[2]!), nameField(f[3]!, origin)]);
    case T.TXT:
      return characterStrings(f);
    case T.SOA:
      need(f, 7, 'SOA data "mname rname serial refresh retry expire minimum"');
      return concat([nameField(f[0]!, origin), nameField(f[1]!, origin), ...f.slice(2).map(u32)]);
    default:
      // RFC 3597 generic form: \# length hex
      if (f[0] === '\\#' && f.length >= 2) {
        const hex = f.slice(2).join('');
        if (!/^([0-9a-f]{2})*$/i.test(hex) || hex.length / 2 !== Number(f[1])) throw new Error('has bad RFC 3597 generic data');
        return Uint8Array.from(Buffer.from(hex, 'hex'));
      }
      throw new Error(`has type ${typeName(type)} which needs RFC 3597 generic data (\\# len hex)`);
  }
}

/** Presentation text of RDATA (for `lanctl records` and tests). */
export function formatRdata(type: number, rdata: Uint8Array): string {
  const name = (at: number): { text: string; end: number } => {
    const n = readName(rdata, at);
    return n === null ? { text: '?', end: rdata.length } : { text: n.name + '.', end: n.end };
  };
  const be16 = (at: number): number => ((rdata[at] ?? 0) << 8) | (rdata[at + 1] ?? 0);
  switch (type) {
    case T.A: return [...rdata].join('.');
    case T.AAAA: {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(be16(i).toString(16));
      return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
    }
    case T.NS: case T.CNAME: case T.PTR: return name(0).text;
    case T.MX: return `${be16(0)} ${name(2).text}`;
    case T.SRV: return `${be16(0)} ${be16(2)} ${be16(4)} ${name(6).text}`;
    case T.TXT: {
      const out: string[] = [];
      for (let p = 0; p < rdata.length;) {
        const len = rdata[p]!;
        out.push(JSON.stringify(Buffer.from(rdata.subarray(p + 1, p + 1 + len)).toString('utf8')));
        p += 1 + len;
      }
      return out.join(' ');
    }
    case T.SOA: {
      const m = name(0), r = name(m.end);
      const nums: number[] = [];
      for (let i = 0; i < 5; i++) nums.push(((be16(r.end + 4 * i) << 16) >>> 0) + be16(r.end + 4 * i + 2));
      return `${m.text} ${r.text} ${nums.join(' ')}`;
    }
    default: return `\\# ${rdata.length} ${Buffer.from(rdata).toString('hex')}`;
  }
}
