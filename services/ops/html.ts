// The one way pages build HTML: a tagged template that escapes every interpolated value. Host
// names, TXT data and boot-file names come from the network (DHCP option 12, TFTP requests), so
// nothing reaches a page unescaped unless it is an Html value built here. Pure.

/** Markup that is already safe: made by `html` or `raw` (for constant strings only). */
export class Html {
  readonly text: string;
  constructor(text: string) { this.text = text; }
  toString(): string { return this.text; }
}

const ENTITY: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text as HTML text or attribute value: the five markup characters become entities, control
 * characters become visible `\xNN` (a hostname with a BEL or NUL shows what it holds), and lone
 * UTF-16 surrogates (from invalid input) become U+FFFD.
 */
export function escapeText(value: string): string {
  return value
    .replace(/[&<>"']/g, (c) => ENTITY[c]!)
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function piece(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(piece).join('');
  return escapeText(String(value));
}

/** `html\`<td>${name}</td>\``: every value is escaped unless it is Html; arrays are joined. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += piece(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Trusted constant markup (never pass data through this). */
export function raw(text: string): Html {
  return new Html(text);
}
