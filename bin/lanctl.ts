#!/usr/bin/env node
import { quietOnClosedOutput, runCli } from './cli.js';
import { commands } from './commands.js';
import { VERSION } from './version.js';

// `lanctl`: the operator CLI and, as `lanctl serve`, the daemon. Commands talk to the local daemon's
// control socket; bin/commands.ts is the whole CLI surface, each command's module loaded when it runs.

quietOnClosedOutput(process.argv[2] === 'serve');
const code = await runCli('lanctl', process.argv.slice(2), commands, VERSION, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
process.exitCode = code;
