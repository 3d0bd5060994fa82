import type { z } from 'zod';

// Turns zod issues into the messages operators see: `key.path[0].name: "bad value" is not ...`.
// The bad value is read back from the raw input by the issue's path, so every message shows what
// the file actually said.

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): { found: boolean; value: unknown } {
  let cur: unknown = root;
  for (const part of path) {
    if (cur === null || typeof cur !== 'object' || !(part in (cur as object))) return { found: false, value: undefined };
    cur = (cur as Record<PropertyKey, unknown>)[part];
  }
  return { found: true, value: cur };
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function formatIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    return keys.map((k) => `${formatPath([...issue.path, k])}: unknown key (check its spelling and indentation)`).join('\n');
  }
  const { found, value } = valueAt(input, issue.path);
  if (!found || value === undefined) {
    // A cross-field check on an absent key says itself what is missing and why; one about a default
    // the file does not spell out ("is also tftp.port ...") gets "(default)" where the value would be.
    if (issue.code === 'custom') return issue.message.startsWith('is ') ? `${where}: (default) ${issue.message}` : `${where}: ${issue.message}`;
    return `${where}: is required but missing`;
  }
  const shown = show(value);
  switch (issue.code) {
    case 'invalid_type':
      return issue.message.startsWith('is ') ? `${where}: ${shown} ${issue.message}` : `${where}: ${shown} is not a ${issue.expected}`;
    case 'invalid_value':
      return `${where}: ${shown} is not one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return issue.message.startsWith('is ') ? `${where}: ${shown} ${issue.message}` : `${where}: ${shown} is below the minimum ${String(issue.minimum)}`;
    case 'too_big':
      return issue.message.startsWith('is ') ? `${where}: ${shown} ${issue.message}` : `${where}: ${shown} is above the maximum ${String(issue.maximum)}`;
    case 'invalid_union': {
      return `${where}: ${shown} ${issue.message.startsWith('is ') ? issue.message : 'is not valid here'}`;
    }
    default:
      return issue.message.startsWith('is ') ? `${where}: ${shown} ${issue.message}` : `${where}: ${shown}: ${issue.message}`;
  }
}

export function formatIssues(issues: ReadonlyArray<z.core.$ZodIssue>, input: unknown): string[] {
  const lines = new Set<string>();
  for (const issue of issues) for (const line of formatIssue(issue, input).split('\n')) lines.add(line);
  return [...lines];
}
