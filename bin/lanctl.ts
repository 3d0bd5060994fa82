#!/usr/bin/env node
import { quietOnClosedOutput, runCli, type CliCommand } from './cli.js';
import { configCheckCommand, serveCommand, statusCommand } from './commands-core.js';
import { dnsCommands } from './commands-dns.js';
import { VERSION } from './version.js';
import { dhcpCommands } from './commands-dhcp.js';
import { ntpStatusCommand } from './commands-ntp.js';
import { vipCommands } from './commands-vip.js';
import { nodesCommands } from './commands-nodes.js';
import { initCommand } from './commands-init.js';
import { clusterRejoinCommand } from './commands-cluster.js';
import { bootCommands } from './commands-boot.js';
import { deployCommands } from './commands-deploy.js';
import { internalCommands } from './commands-internal.js';
import { opsCommands } from './commands-ops.js';
import { demoCommand } from './commands-demo.js';

// `lanctl`: the operator CLI and, as `lanctl serve`, the daemon. Commands talk to the local daemon's
// control socket; the command list below is the whole CLI surface.

export const commands: CliCommand[] = [
  serveCommand,
  configCheckCommand,
  initCommand,
  clusterRejoinCommand,
  statusCommand,
  ntpStatusCommand,
  ...dhcpCommands,
  ...dnsCommands,
  ...nodesCommands,
  ...vipCommands,
  ...bootCommands,
  ...deployCommands,
  ...internalCommands,
  ...opsCommands,
  demoCommand,
];

quietOnClosedOutput(process.argv[2] === 'serve');
const code = await runCli('lanctl', process.argv.slice(2), commands, VERSION, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
process.exitCode = code;
