// The template language of boot files: `{{name}}` inserts a variable; `{{#initrd}}...{{/initrd}}`
// keeps its content only when the variable has a value, `{{^initrd}}...{{/initrd}}` only when it
// has none. Nothing else: no escaping, no loops, no expressions (U-Boot, iPXE and pxelinux each
// have their own `${...}`, which passes through untouched). Pure: compile once, render per request.
//
// Values are not escaped but checked: each variable has the characters it may hold (VALUE_CHARS),
// none of them syntax in a U-Boot hush script, an iPXE script or a pxelinux menu, so no value can
// end a quoted string, start a command (`;`, `&&`, `||`, a line break) or expand (`$`, backquote).

/** Every variable a template may use (README: services/boot). */
export const TEMPLATE_VARIABLES = [
  'name', 'ip', 'mac', 'mac_dashes', 'group', 'profile', 'arch', 'generation',
  'kernel', 'initrd', 'dtb', 'bootargs', 'boot_command',
  'server', 'http_base', 'tftp_base', 'file',
] as const;
export type TemplateVariable = typeof TEMPLATE_VARIABLES[number];
export type TemplateValues = Partial<Record<TemplateVariable, string>>;

const KNOWN = new Set<string>(TEMPLATE_VARIABLES);

/** A word: node names, MACs, addresses, profile, group and generation names. */
const WORD = /^[A-Za-z0-9._:-]*$/;
/** A path below the boot root, or a URL base (`http://10.0.0.1:8080`); no spaces, quotes or `$`. */
const PATH = /^[A-Za-z0-9._:/+,=@%~\[\]-]*$/;
/**
 * The kernel command line: printable ASCII with spaces, `$` (the operator's own U-Boot or iPXE
 * variables), but no `"` or `\` (the U-Boot script quotes it), no `;`, `|`, `&`, `<`, `>` or backquote.
 */
const ARGS = /^[A-Za-z0-9 !#$%()*+,./:=?@\[\]^_{}~-]*$/;

/** The characters each variable's value may hold; a value with another one is refused at render. */
export const VALUE_CHARS: Readonly<Record<TemplateVariable, RegExp>> = {
  name: WORD, ip: WORD, mac: WORD, mac_dashes: WORD, group: WORD, profile: WORD, arch: WORD, generation: WORD, boot_command: WORD, server: WORD,
  kernel: PATH, initrd: PATH, dtb: PATH, http_base: PATH, tftp_base: PATH, file: PATH,
  bootargs: ARGS,
};

/** The first character of `value` that `variable` may not hold, or null. */
export function unsafeChar(variable: TemplateVariable, value: string): string | null {
  if (VALUE_CHARS[variable].test(value)) return null;
  for (const c of value) if (!VALUE_CHARS[variable].test(c)) return c;
  return null;
}

type TemplateNode =
  | { kind: 'text'; text: string }
  | { kind: 'variable'; name: TemplateVariable }
  | { kind: 'section'; name: TemplateVariable; inverted: boolean; body: TemplateNode[] };

export interface Template {
  readonly nodes: readonly TemplateNode[];
  /** The variables the template can insert (outside sections too), for checks and docs. */
  readonly variables: ReadonlySet<TemplateVariable>;
}

export type Compiled = { ok: true; template: Template } | { ok: false; error: string };

const TAG = /\{\{\s*([#^/]?)\s*([A-Za-z0-9_.-]*)\s*\}\}/g;

/** Parses a template; the error names the offending tag and its line. */
export function compileTemplate(text: string): Compiled {
  const root: TemplateNode[] = [];
  const stack: Array<{ name: string; body: TemplateNode[]; line: number }> = [];
  const variables = new Set<TemplateVariable>();
  let body = root;
  let last = 0;
  const lineAt = (index: number): number => text.slice(0, index).split('\n').length;
  for (const m of text.matchAll(TAG)) {
    const index = m.index;
    if (index > last) body.push({ kind: 'text', text: text.slice(last, index) });
    last = index + m[0].length;
    const sigil = m[1]!;
    const name = m[2]!;
    if (!KNOWN.has(name)) {
      return { ok: false, error: `line ${lineAt(index)}: unknown variable "{{${sigil}${name}}}" (known: ${TEMPLATE_VARIABLES.join(', ')})` };
    }
    const variable = name as TemplateVariable;
    if (sigil === '/') {
      const open = stack.pop();
      if (open === undefined || open.name !== name) {
        return { ok: false, error: `line ${lineAt(index)}: "{{/${name}}}" closes ${open === undefined ? 'no open section' : `"{{#${open.name}}}" of line ${open.line}`}` };
      }
      body = stack.length === 0 ? root : stack[stack.length - 1]!.body;
      continue;
    }
    if (sigil === '#' || sigil === '^') {
      const section: TemplateNode = { kind: 'section', name: variable, inverted: sigil === '^', body: [] };
      body.push(section);
      stack.push({ name, body: section.body, line: lineAt(index) });
      body = section.body;
      continue;
    }
    variables.add(variable);
    body.push({ kind: 'variable', name: variable });
  }
  if (stack.length > 0) {
    const open = stack[stack.length - 1]!;
    return { ok: false, error: `line ${open.line}: "{{#${open.name}}}" is never closed (add "{{/${open.name}}}")` };
  }
  if (last < text.length) body.push({ kind: 'text', text: text.slice(last) });
  // "{{" that starts no tag (e.g. "{{ a b }}") is a mistake, not text.
  const tagStarts = new Set([...text.matchAll(TAG)].map((m) => m.index));
  for (let at = text.indexOf('{{'); at >= 0; at = text.indexOf('{{', at + 2)) {
    if (!tagStarts.has(at)) {
      return { ok: false, error: `line ${lineAt(at)}: "{{" that starts no tag (write {{name}}, {{#name}}, {{^name}} or {{/name}})` };
    }
  }
  return { ok: true, template: { nodes: root, variables } };
}

export type Rendered = { ok: true; text: string } | { ok: false; variable: TemplateVariable; reason: 'missing' } | { ok: false; variable: TemplateVariable; reason: 'unsafe'; char: string };

/**
 * Renders with the given values. A variable inserted without a value is an error naming it; so is
 * a value holding a character outside VALUE_CHARS (a line break, a quote, `;`: it could add
 * commands to a boot script), checked wherever the variable is inserted.
 */
export function renderTemplate(template: Template, values: TemplateValues): Rendered {
  const out: string[] = [];
  const walk = (nodes: readonly TemplateNode[]): Rendered | null => {
    for (const node of nodes) {
      if (node.kind === 'text') {
        out.push(node.text);
      } else if (node.kind === 'variable') {
        const value = values[node.name];
        if (value === undefined || value === '') return { ok: false, variable: node.name, reason: 'missing' };
        const char = unsafeChar(node.name, value);
        if (char !== null) return { ok: false, variable: node.name, reason: 'unsafe', char };
        out.push(value);
      } else {
        const value = values[node.name];
        const present = value !== undefined && value !== '';
        if (present !== node.inverted) {
          const failed = walk(node.body);
          if (failed !== null) return failed;
        }
      }
    }
    return null;
  };
  const failed = walk(template.nodes);
  return failed ?? { ok: true, text: out.join('') };
}
