import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Document } from 'yaml';
import { ExitCode, LanhaError, unreadableFile } from './errors.js';

// What a client command (status, leases, deploy ...) needs from the node's config: the control
// socket path, and nothing else. The daemon has validated the file it runs from, so a client does
// not load the schemas (zod and every service's config, most of a CLI start); `lanctl config check`
// still validates the whole file. A file in the plain block style the examples use is read by a
// line scanner; anything else (flow style, anchors, quoting it is unsure of) goes to the yaml parser,
// loaded only then: the scanner answers as the parser would, or not at all.

/** node.controlSocket when the config does not set it (config/index.ts uses the same default). */
export const DEFAULT_CONTROL_SOCKET = '/run/lanha/lanha.sock';

/**
 * The control socket named in a config file (node.controlSocket, else the default). A missing or
 * unreadable file, text that is not YAML, or a value that is not a path is a LanhaError naming the
 * file and what to do.
 */
export function controlSocketFrom(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') throw new LanhaError('usage', `no config at ${file}: give --config FILE or --socket PATH to find the daemon`, ExitCode.usage);
    throw new LanhaError('config-unreadable', `cannot read the config ${file} (${unreadableFile(code)}); or give the daemon's control socket (node.controlSocket) with --socket PATH`, ExitCode.config);
  }
  return controlSocketOf(text, file);
}

/** controlSocketFrom for text already read; `file` only names it in errors. */
export function controlSocketOf(text: string, file: string): string {
  const bad = (why: string): LanhaError =>
    new LanhaError('config-invalid', `${file}: ${why}; run \`lanctl config check ${file}\` for the details, or give --socket PATH`, ExitCode.config);
  const scanned = scanControlSocket(text);
  if (scanned !== undefined) return scanned ?? DEFAULT_CONTROL_SOCKET;
  // Loaded here: most files never need the parser (60 modules, a third of a client command's start).
  const { isAlias, isMap, isScalar, parseDocument } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  // Only one scalar is read: no toJS, so aliases are not expanded (an alias bomb costs nothing here).
  const doc = parseDocument(text, { uniqueKeys: false });
  if (doc.errors.length > 0) throw bad(`is not valid YAML (${doc.errors[0]!.message.split('\n')[0]})`);
  const block = resolved(doc, isMap(doc.contents) ? doc.contents.get('node', true) : undefined, isAlias);
  if (!isMap(block)) throw bad('has no node: block, so it is not a lanha config');
  const node = resolved(doc, block.get('controlSocket', true), isAlias);
  if (node === undefined) return DEFAULT_CONTROL_SOCKET;
  const socket: unknown = isScalar(node) ? node.value : node;
  if (typeof socket !== 'string' || socket === '') throw bad(`node.controlSocket: ${isScalar(node) ? JSON.stringify(socket) : 'a list or mapping'} is not a socket path`);
  return socket;
}

/** The node an alias points at (one hop: an anchor cannot name another alias); other nodes as they are. */
function resolved(doc: Document, node: unknown, isAlias: typeof import('yaml').isAlias): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

/** `key: value  # comment` at the start of a line (after `indent` spaces); value and comment optional. */
const KEY_LINE = /^([A-Za-z_][A-Za-z0-9_-]*)[ ]*:(?:[ ]+(.*?))?[ ]*$/;
/** A value the scanner may read: a path-like plain scalar (a "/" makes it a string in YAML 1.2), or quoted without escapes. */
const PLAIN_PATH = /^[A-Za-z0-9_./~+=^$()-][^\s"'#,[\]{}]*$/;
const DOUBLE_QUOTED = /^"([^"\\]*)"$/;
const SINGLE_QUOTED = /^'([^']*)'$/;

/**
 * node.controlSocket from a config in plain block style: the path, null when the node block has no
 * controlSocket, undefined when the text is anything the scanner is not sure of (the caller then
 * asks the yaml parser). Never a different answer from the parser's.
 */
export function scanControlSocket(text: string): string | null | undefined {
  let inNode = false;
  let seenNode = false;
  let indent = -1;
  let socket: string | null = null;
  let afterSocket = false;
  for (const raw of text.split('\n')) {
    const body = withoutComment(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
    if (body === undefined) return undefined;
    if (body.trim() === '') continue;
    const lead = body.length - body.trimStart().length;
    if (/^(---|\.\.\.|%)/.test(body) || /\t/.test(body.slice(0, lead + 1))) return undefined;
    // A flow collection left open here may go on below at any indentation: give it to the parser.
    if (/:[ ]+[[{]/.test(body) && !/[\]}]$/.test(body)) return undefined;
    if (lead === 0) {
      const key = KEY_LINE.exec(body);
      if (key === null || !simpleValue(key[2])) return undefined;
      inNode = key[1] === 'node';
      afterSocket = false;
      if (inNode) {
        if (seenNode || key[2] !== undefined) return undefined; // a second node:, or node: on one line (flow, anchor, alias)
        seenNode = true;
      }
      continue;
    }
    if (!inNode) continue;
    if (indent === -1) indent = lead;
    if (lead > indent) {
      if (afterSocket) return undefined; // the value goes on below its key
      continue;
    }
    if (lead < indent) return undefined;
    const key = KEY_LINE.exec(body.slice(lead));
    if (key === null || !simpleValue(key[2])) return undefined;
    afterSocket = key[1] === 'controlSocket';
    if (!afterSocket) continue;
    if (socket !== null) return undefined;
    const value = key[2] ?? '';
    const quoted = DOUBLE_QUOTED.exec(value) ?? SINGLE_QUOTED.exec(value);
    if (quoted !== null) socket = quoted[1]!;
    else if (PLAIN_PATH.test(value) && value.includes('/')) socket = value;
    else return undefined;
    if (socket === '') return undefined;
  }
  return seenNode && indent !== -1 ? socket : undefined;
}

/**
 * The line without a trailing ` # comment`; undefined when quotes make that unclear (an odd count
 * of either quote before the "#").
 */
function withoutComment(line: string): string | undefined {
  const hash = line.search(/(^|[ ])#/);
  const code = hash === -1 ? line : line.slice(0, hash);
  const unescaped = code.replace(/\\./g, ''); // \" inside a double-quoted string
  if ((unescaped.split('"').length - 1) % 2 === 1 || (unescaped.split("'").length - 1) % 2 === 1) return undefined;
  return code.trimEnd();
}

/** A value that ends on its line: empty (a block below), a closed quote, or a plain scalar. */
function simpleValue(value: string | undefined): boolean {
  if (value === undefined) return true;
  if (/^["']/.test(value)) return DOUBLE_QUOTED.test(value) || SINGLE_QUOTED.test(value);
  return !/^[[{|>&*!%@`?]/.test(value) && !/^-( |$)/.test(value);
}
