import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { formatIssues, formatPath } from './config-errors.js';
import { unreadableFile } from './errors.js';

// Reading a YAML config file against a zod schema: syntax errors, the top-level shape, schema issues
// turned into `key.path: "value" is not ...` lines, and a frozen result. Which schema is the
// composition root's business (config/index.ts); nothing here knows a service.

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/**
 * One YAML syntax error on one line: the parser's first line ("... at line 4, column 3:", whose
 * colon introduced a context block the one-line form drops) ending in the text of that line.
 */
function yamlSyntaxProblem(error: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] | undefined }, text: string): string {
  const first = error.message.split('\n')[0]!.replace(/:$/, '');
  const line = error.linePos === undefined ? undefined : text.split('\n')[error.linePos[0].line - 1];
  return `YAML syntax: ${first}${line === undefined || line.trim() === '' ? '' : `: ${JSON.stringify(line.replace(/\r$/, ''))}`}`;
}

/** Parses YAML text and validates it against `schema`; throws ConfigError with one line per problem. */
export function parseYamlConfig<S extends z.ZodType>(schema: S, text: string, file: string): z.output<S> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length > 0) {
    const problems = doc.errors.filter((e) => e.code !== 'DUPLICATE_KEY').map((e) => yamlSyntaxProblem(e, text));
    // A duplicate key is named by its key path, not only its position.
    if (doc.errors.some((e) => e.code === 'DUPLICATE_KEY')) problems.push(...duplicateKeys(doc, lines));
    throw new ConfigError(file, problems);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: ALIAS_EXPANSION_MAX });
  } catch (error) {
    // yaml throws a ReferenceError when aliases would expand past the bound (a "billion laughs" file).
    if (!(error instanceof ReferenceError)) throw error;
    throw new ConfigError(file, [`(top level): YAML aliases (*name) expand to too many values (more than ${ALIAS_EXPANSION_MAX} alias uses, weighted by size); write the values out instead of nesting aliases`]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, ['(top level): the file must be a YAML mapping with at least a `node:` block']);
  }
  const result = schema.safeParse(raw);
  if (!result.success) throw new ConfigError(file, formatIssues(result.error.issues, raw));
  return deepFreeze(result.data);
}

/** How far aliases may expand (yaml's maxAliasCount): plenty for a config, nowhere near a bomb. */
const ALIAS_EXPANSION_MAX = 100;

/** "dns.zones[0].ttl: duplicate key (line 7, column 7; first at line 6)" for every repeated key. */
function duplicateKeys(doc: Document, lines: LineCounter): string[] {
  const out: string[] = [];
  const at = (offset: number | undefined): string => {
    if (offset === undefined) return 'unknown position';
    const { line, col } = lines.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  const walk = (node: unknown, path: PropertyKey[]): void => {
    if (isMap(node)) {
      const seen = new Map<string, number | undefined>();
      for (const pair of node.items) {
        const keyNode = pair.key;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const offset = isScalar(keyNode) ? keyNode.range?.[0] : undefined;
        if (seen.has(key)) {
          out.push(`${formatPath([...path, key])}: duplicate key (${at(offset)}; the first is at ${at(seen.get(key)).replace(/, column \d+$/, '')}); keep one`);
        } else {
          seen.set(key, offset);
        }
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  walk(doc.contents, []);
  return out;
}

/**
 * How large a config file may be. A site of 10,000 reservations writes about 0.75 MiB; parsing
 * costs ~50 times the file's size in memory (a 12 MiB file took 660 MiB), so a far larger file is
 * a mistake (a log or an image given as --config) that could take the daemon's memory with it.
 */
export const CONFIG_BYTES_MAX = 8 * 1024 * 1024;

function cannotRead(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  return `cannot read the file (${unreadableFile(code)})${code === 'ENOENT' ? '; give the path of the config file' : ''}`;
}

/** The text of a config file, or a ConfigError that says how to point at the right one. */
export function readConfigText(file: string): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer (it is refused below).
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (error) {
    throw new ConfigError(file, [cannotRead(error)]);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      throw new ConfigError(file, [`is not a regular file (${stat.isDirectory() ? 'a directory' : stat.isFIFO() ? 'a FIFO' : 'a device or socket'}); give the path of the YAML file with --config FILE`]);
    }
    if (stat.size > CONFIG_BYTES_MAX) {
      throw new ConfigError(file, [`the file holds ${mib(stat.size)} MiB; a config may hold at most ${mib(CONFIG_BYTES_MAX)} MiB (is this the right file? large inventories go in with lanctl nodes import)`]);
    }
    return readFileSync(fd, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(file, [cannotRead(error)]);
  } finally {
    closeSync(fd);
  }
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}
