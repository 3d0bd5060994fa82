import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, parseDocument, type Document } from 'yaml';
import { ExitCode, LanhaError } from './errors.js';

// What a client command (status, leases, deploy ...) needs from the node's config: the control
// socket path, and nothing else. The daemon has validated the file it runs from, so a client does
// not load the schemas (zod and every service's config, most of a CLI start); `lanctl config check`
// still validates the whole file.

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
    throw new LanhaError('config-unreadable', `cannot read the config ${file} (${code}): give --config FILE or --socket PATH to find the daemon`, ExitCode.config);
  }
  return controlSocketOf(text, file);
}

/** controlSocketFrom for text already read; `file` only names it in errors. */
export function controlSocketOf(text: string, file: string): string {
  const bad = (why: string): LanhaError =>
    new LanhaError('config-invalid', `${file}: ${why}; run \`lanctl config check ${file}\` for the details, or give --socket PATH`, ExitCode.config);
  // Only one scalar is read: no toJS, so aliases are not expanded (an alias bomb costs nothing here).
  const doc = parseDocument(text, { uniqueKeys: false });
  if (doc.errors.length > 0) throw bad(`is not valid YAML (${doc.errors[0]!.message.split('\n')[0]})`);
  const block = resolved(doc, isMap(doc.contents) ? doc.contents.get('node', true) : undefined);
  if (!isMap(block)) throw bad('has no node: block, so it is not a lanha config');
  const node = resolved(doc, block.get('controlSocket', true));
  if (node === undefined) return DEFAULT_CONTROL_SOCKET;
  const socket: unknown = isScalar(node) ? node.value : node;
  if (typeof socket !== 'string' || socket === '') throw bad(`node.controlSocket: ${isScalar(node) ? JSON.stringify(socket) : 'a list or mapping'} is not a socket path`);
  return socket;
}

/** The node an alias points at (one hop: an anchor cannot name another alias); other nodes as they are. */
function resolved(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}
