import { readFileSync } from 'node:fs';

// Annotated hex golden files: hex digits in any grouping, `#` starts a comment to the end of the
// line, blank lines ignored. A file may hold several packets separated by lines of `---`.
export function parseHex(text: string): Uint8Array[] {
  const packets: Uint8Array[] = [];
  let digits = '';
  const flush = (): void => {
    if (digits.length === 0) return;
    if (digits.length % 2 !== 0) throw new Error(`odd number of hex digits (${digits.length}) in golden data`);
    packets.push(Uint8Array.from(digits.match(/../g)!.map((h) => parseInt(h, 16))));
    digits = '';
  };
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/#.*$/, '').trim();
    if (line === '---') { flush(); continue; }
    const clean = line.replace(/[\s:]/g, '');
    if (!/^[0-9a-fA-F]*$/.test(clean)) throw new Error(`not hex: "${rawLine}"`);
    digits += clean;
  }
  flush();
  return packets;
}

export function readHexFile(path: string): Uint8Array[] {
  return parseHex(readFileSync(path, 'utf8'));
}

export function readHexPacket(path: string): Uint8Array {
  const packets = readHexFile(path);
  if (packets.length !== 1) throw new Error(`${path}: expected one packet, found ${packets.length}`);
  return packets[0]!;
}

/** Hex text with 16 bytes a line, for writing golden files and for diffs in failure messages. */
export function toHex(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    lines.push([...bytes.subarray(i, i + 16)].map((b) => b.toString(16).padStart(2, '0')).join(' '));
  }
  return lines.join('\n');
}
