#!/usr/bin/env node
import { quietOnClosedOutput, runCli } from './cli.js';
import { commands } from './commands.js';
import { VERSION } from './version.js';

// `lanhad --config FILE` is `lanctl serve --config FILE` under the daemon's own name.
quietOnClosedOutput(true);
process.exitCode = await runCli('lanhad', ['serve', ...process.argv.slice(2)], commands.filter((c) => c.path.join(' ') === 'serve'), VERSION, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
