// Domain names on the wire (RFC 1035 §3.1, §4.1.4).
//
// In memory a name is its presentation text without the trailing dot ("node07.lan", "" = the root).
// Keys are lowercased (RFC 4343: matching is case-insensitive, the case asked is echoed back).
// Decoding follows compression pointers only backwards (a pointer must point before the byte that
// holds it), so a pointer loop cannot exist and decoding is linear; names longer than 255 bytes on
// the wire or labels longer than 63 are refused. Labels are kept as latin1 text: every byte value
// survives a decode/encode round trip.

export const NAME_MAX = 255;
export const LABEL_MAX = 63;

export type NameRead = { name: string; end: number } | null;

/**
 * Reads the name at `offset` of `msg` (bytes before `limit` only). `end` is the offset just after
 * the name's bytes at `offset` (after the first pointer, if any). Null on any malformation.
 */
export function readName(msg: Uint8Array, offset: number, limit = msg.length): NameRead {
  let p = offset;
  let end = -1;
  let wireLength = 1;
  let floor = offset; // a pointer must point strictly before the bytes being read
  // The text's character codes go into one reused array and become one flat string at the end:
  // appending a character at a time made a string per character (a miss's names were a third of
  // the forwarding worker's garbage, services/dns/README.md).
  let n = 0;
  for (;;) {
    if (p >= limit) return null;
    const len = msg[p]!;
    if (len === 0) {
      if (end < 0) end = p + 1;
      return { name: n === 0 ? '' : textOf(n), end };
    }
    if ((len & 0xc0) === 0xc0) {
      if (p + 1 >= limit) return null;
      const target = ((len & 0x3f) << 8) | msg[p + 1]!;
      if (end < 0) end = p + 2;
      if (target >= floor) return null;
      floor = target;
      p = target;
      continue;
    }
    if ((len & 0xc0) !== 0) return null; // 0x40 / 0x80: extended label types, not supported
    wireLength += len + 1;
    if (wireLength > NAME_MAX || p + 1 + len > limit) return null;
    if (n > 0) nameCodes[n++] = 0x2e;
    for (let i = p + 1; i <= p + len; i++) {
      const c = msg[i]!;
      // A dot or backslash inside a label is escaped so the text form stays unambiguous.
      if (c === 0x2e || c === 0x5c) nameCodes[n++] = 0x5c;
      nameCodes[n++] = c;
    }
    p += len + 1;
  }
}

/** Character codes of the name being read (at most 2 x 255: every byte escaped). */
const nameCodes: number[] = [];

function textOf(n: number): string {
  nameCodes.length = n;
  return String.fromCharCode.apply(null, nameCodes);
}

/**
 * Where the name at `offset` ends, under exactly `readName`'s rules (the same null cases), without
 * building its text: for walking a message's records (cache.ts) with no allocation per name. -1
 * where `readName` gives null.
 */
export function nameEnd(msg: Uint8Array, offset: number, limit = msg.length): number {
  let p = offset;
  let end = -1;
  let wireLength = 1;
  let floor = offset;
  for (;;) {
    if (p >= limit) return -1;
    const len = msg[p]!;
    if (len === 0) return end < 0 ? p + 1 : end;
    if ((len & 0xc0) === 0xc0) {
      if (p + 1 >= limit) return -1;
      const target = ((len & 0x3f) << 8) | msg[p + 1]!;
      if (end < 0) end = p + 2;
      if (target >= floor) return -1;
      floor = target;
      p = target;
      continue;
    }
    if ((len & 0xc0) !== 0) return -1;
    wireLength += len + 1;
    if (wireLength > NAME_MAX || p + 1 + len > limit) return -1;
    p += len + 1;
  }
}

/** `p` with compression pointers followed to the next label; bounded for names nameEnd has not checked. */
function labelAt(msg: Uint8Array, p: number): number {
  for (let steps = 0; steps < 128 && (msg[p]! & 0xc0) === 0xc0; steps++) p = ((msg[p]! & 0x3f) << 8) | msg[p + 1]!;
  return p;
}

/**
 * Whether the names at `a` and `b` of `msg` (both accepted by `nameEnd`) are the same name, ASCII
 * letters in any case (RFC 4343), compression pointers followed. Reads no text, never throws.
 */
export function sameNameAt(msg: Uint8Array, a: number, b: number): boolean {
  for (let labels = 0; labels < 128; labels++) {
    a = labelAt(msg, a);
    b = labelAt(msg, b);
    const len = msg[a]!;
    if (len !== msg[b]) return false;
    if (len === 0 || a === b) return true;
    for (let i = 1; i <= len; i++) {
      let x = msg[a + i]!, y = msg[b + i]!;
      if (x >= 0x41 && x <= 0x5a) x |= 0x20;
      if (y >= 0x41 && y <= 0x5a) y |= 0x20;
      if (x !== y) return false;
    }
    a += len + 1;
    b += len + 1;
  }
  return false;
}

/** Whether the name at `zone` of `msg` is the name at `name` or one of its ancestors (both accepted by `nameEnd`). */
export function nameUnderAt(msg: Uint8Array, name: number, zone: number): boolean {
  let extra = labelCount(msg, name) - labelCount(msg, zone);
  if (extra < 0) return false;
  for (; extra > 0; extra--) {
    name = labelAt(msg, name);
    name += msg[name]! + 1;
  }
  return sameNameAt(msg, name, zone);
}

function labelCount(msg: Uint8Array, p: number): number {
  let n = 0;
  for (p = labelAt(msg, p); msg[p]! !== 0 && n < 128; p = labelAt(msg, p + msg[p]! + 1)) n++;
  return n;
}

/**
 * The text without its final dot, if it has one that ends the name: "lan." -> "lan", but "a\." keeps
 * its dot (an escaped one, part of the label) and "a\\." loses it (an escaped backslash, then the dot).
 */
function withoutFinalDot(name: string): string {
  if (!name.endsWith('.')) return name;
  let backslashes = 0;
  for (let i = name.length - 2; i >= 0 && name.charCodeAt(i) === 0x5c; i--) backslashes++;
  return backslashes % 2 === 0 ? name.slice(0, -1) : name;
}

/** Splits presentation text into labels, honouring "\." and "\\" escapes. Null when not a valid name. */
export function splitName(name: string): string[] | null {
  if (name === '' || name === '.') return [];
  const text = withoutFinalDot(name);
  const labels: string[] = [];
  let label = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) { label += text[++i]!; continue; }
    if (c === '.') { labels.push(label); label = ''; continue; }
    label += c;
  }
  labels.push(label);
  let wire = 1;
  for (const l of labels) {
    if (l.length === 0 || l.length > LABEL_MAX) return null;
    for (let i = 0; i < l.length; i++) if (l.charCodeAt(i) > 0xff) return null;
    wire += l.length + 1;
  }
  return wire > NAME_MAX ? null : labels;
}

/**
 * What is wrong with a name in presentation text, as a predicate for messages ("has a label longer
 * than 63 octets"), or null when it is a valid name. The same rules for zone-file lines (config)
 * and for names set through the control API: no control characters, nothing the zone-file syntax
 * would split or cut (blanks, ";", quotes), labels of 1..63 octets, at most 255 octets on the wire.
 */
export function nameProblem(name: string): string | null {
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'has a control character (NUL, tab, newline and the like are not allowed in names)';
  if (/[ ;"()]/.test(name)) return 'has a blank, ";", quote or parenthesis (not allowed in names here)';
  if (/[^\u0000-\u00ff]/.test(name)) return 'has a character outside Latin-1 (write internationalised names in their xn-- form)';
  const text = withoutFinalDot(name);
  if (text === '' && name !== '.') return 'is empty';
  let wire = 1;
  for (const label of text === '' ? [] : text.replace(/\\./g, 'x').split('.')) {
    if (label.length === 0) return 'has an empty label (two dots in a row, or a leading dot)';
    if (label.length > LABEL_MAX) return `has a label longer than ${LABEL_MAX} octets`;
    wire += label.length + 1;
  }
  return wire > NAME_MAX ? `is longer than ${NAME_MAX} octets` : null;
}

/** The uncompressed wire form of a name. Throws on an invalid name (config is validated first). */
export function encodeName(name: string): Uint8Array {
  const labels = splitName(name);
  if (labels === null) throw new Error(`invalid domain name "${name}"`);
  let size = 1;
  for (const l of labels) size += l.length + 1;
  const out = new Uint8Array(size);
  let p = 0;
  for (const l of labels) {
    out[p++] = l.length;
    for (let i = 0; i < l.length; i++) out[p++] = l.charCodeAt(i);
  }
  out[p] = 0;
  return out;
}

/** Lowercase key of a name (ASCII only, as RFC 4343 asks). */
export function nameKey(name: string): string {
  const n = withoutFinalDot(name);
  return asciiLower(n);
}

export function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) | 0x20)) : s;
}

/**
 * True when `zone` is `name` or one of its ancestors, label by label: an escaped dot (`a\.b`) is
 * part of a label, not a boundary; ASCII letters match in any case (RFC 4343); "" (or ".") is the
 * root, above every name; a trailing dot is allowed on either. The presentation-text twin of
 * nameUnderAt (the same answer for the same names on the wire, name.test.ts). False when either is
 * not a valid name.
 */
export function isSubdomain(name: string, zone: string): boolean {
  const n = splitName(name), z = splitName(zone);
  if (n === null || z === null || z.length > n.length) return false;
  for (let i = 1; i <= z.length; i++) {
    const a = n[n.length - i]!, b = z[z.length - i]!;
    if (a !== b && (a.length !== b.length || asciiLower(a) !== asciiLower(b))) return false;
  }
  return true;
}

/** Where the label that starts at `from` of a name's text ends: its first unescaped dot, or the text's end. */
function labelEnd(name: string, from: number): number {
  for (let i = from; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x5c) i++; // "\x": x belongs to the label, a dot included
    else if (c === 0x2e) return i;
  }
  return name.length;
}

/** "a.b.c" -> "b.c", "a\.b.c" -> "c" (an escaped dot is no label boundary); the root's parent is null. */
export function parentName(name: string): string | null {
  if (name === '') return null;
  const dot = labelEnd(name, 0);
  return dot >= name.length ? '' : name.slice(dot + 1);
}

/** Wire length of a name's uncompressed form. */
export function nameWireLength(name: string): number {
  const labels = splitName(name);
  return labels === null ? -1 : labels.reduce((n, l) => n + l.length + 1, 1);
}
