// MAC addresses travel as lower-case colon text ("b8:27:eb:01:02:03"): the form operators type
// and logs show, and a cheap map key.
export type Mac = string;

const MAC_TEXT = /^([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Three dot-separated groups of four hex digits, as Cisco and other switches print MAC tables. */
const MAC_DOTTED = /^([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})$/i;

/** "b8:27:eb:01:02:03", "B8-27-EB-01-02-03", "b827eb010203" or "b827.eb01.0203", any case. */
export function parseMac(text: string): Mac | null {
  const trimmed = text.trim();
  const m = MAC_TEXT.exec(trimmed);
  if (m) return [m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase();
  const d = MAC_DOTTED.exec(trimmed);
  return d ? d.slice(1, 7).join(':').toLowerCase() : null;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

export function macFromBytes(bytes: Uint8Array, offset = 0, length = 6): Mac {
  let out = '';
  for (let i = 0; i < length; i++) out += (i === 0 ? '' : ':') + HEX[bytes[offset + i] ?? 0]!;
  return out;
}

export function macToBytes(mac: Mac): Uint8Array {
  return new Uint8Array(mac.split(':').map((h) => parseInt(h, 16)));
}

/** The first three octets, "b8:27:eb". */
export function ouiOf(mac: Mac): string {
  return mac.slice(0, 8);
}

/** Raspberry Pi Foundation / Raspberry Pi Trading OUIs. */
export const RASPBERRY_PI_OUIS: ReadonlySet<string> = new Set(['b8:27:eb', 'dc:a6:32', 'e4:5f:01', 'd8:3a:dd', '28:cd:c1', '2c:cf:67']);

export function isRaspberryPi(mac: Mac): boolean {
  return RASPBERRY_PI_OUIS.has(ouiOf(mac));
}
