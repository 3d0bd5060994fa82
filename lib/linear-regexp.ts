import { setFlagsFromString } from 'node:v8';

// Regular expressions from the config that run against what clients send (TFTP remap rules match
// the requested file name) must not backtrack: with a rule like `^(a+)+$`, a 30-octet name keeps
// V8's backtracking engine busy for hours, and with it the thread that serves every transfer on it
// (or the whole daemon, with `tftp.workers: 0`). V8's linear-time engine (the `l` flag, behind a
// flag in Node 20-22) runs any pattern it accepts in time linear in the input; it refuses what it
// cannot run that way (backreferences, lookaround, flags such as `i`, very large counted repeats),
// which the config then refuses with a reason.

let enabled = false;

/** `source` compiled for V8's linear-time engine; throws SyntaxError when the pattern needs backtracking or is invalid. */
export function linearRegExp(source: string): RegExp {
  if (!enabled) {
    // Process-wide and idempotent; it only makes the `l` flag legal for patterns compiled after it.
    setFlagsFromString('--enable-experimental-regexp-engine');
    enabled = true;
  }
  return new RegExp(source, 'l');
}

/** Why `source` cannot be a linear-time pattern (for a config message), or null when it can. */
export function linearRegExpProblem(source: string): string | null {
  try {
    new RegExp(source);
  } catch (error) {
    return `is not a valid regular expression (${(error as Error).message})`;
  }
  try {
    linearRegExp(source);
    return null;
  } catch {
    return 'cannot run in linear time (backreferences such as \\1, lookaround such as (?=...) and very large counted repeats are refused here: with a backtracking match a crafted file name can keep the server busy for hours); rewrite it without them';
  }
}
