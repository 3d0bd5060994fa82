#!/usr/bin/env node
import { quietOnClosedOutput, runCli } from './cli.js';
import { commands } from './commands.js';
import { VERSION } from './version.js';

// `lanhad --config FILE` is `lanctl serve --config FILE` under the daemon's own name: its help,
// usage and errors say `lanhad --config FILE` (they said `lanhad serve`, which it does not take),
// and `lanhad --version` prints the version as `lanctl --version` does (it was an unknown option).
quietOnClosedOutput(true);
const serve = commands.find((c) => c.path.join(' ') === 'serve')!;
process.exitCode = await runCli('lanhad', process.argv.slice(2), [{ ...serve, path: [], usage: serve.usage.replace(/^serve /, '') }], VERSION, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
