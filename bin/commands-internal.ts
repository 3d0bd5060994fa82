import { spawn } from 'node:child_process';
import { ExitCode, LanhaError, errorMessage } from '../lib/errors.js';
import { callDaemon } from '../lib/control-client.js';
import { loadValidConfig, configFile, type CliIo, type ParsedArgs } from './cli.js';

// `lanctl internal ssh-gate`: the forced command (authorized_keys `command="..."`) for the sync
// user that netbooting nodes log in as. It allows a read-only rsync pull of a committed
// generation, its checklist, and a report of the result; cluster/deploy/gate.ts decides.

const EX_TEMPFAIL = 75;

export async function sshGateRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const file = configFile(args.values);
  const config = await loadValidConfig(file);
  // Loaded here so that no other command's start pays for the generation store.
  const [{ checklist }, { clientAddress, parseGateCommand }, { generationDir, isFakeSuper, readStoredManifest, storedGenerations }] =
    await Promise.all([import('../cluster/deploy/manifest.js'), import('../cluster/deploy/gate.js'), import('../cluster/deploy/store.js')]);
  const request = parseGateCommand(process.env['SSH_ORIGINAL_COMMAND']);
  const stateDir = config.node.stateDir;
  switch (request.kind) {
    case 'refused':
      io.err(`lanha ssh-gate: refused: ${request.reason}\n`);
      return ExitCode.usage;
    case 'checklist': {
      const manifest = await readStoredManifest(stateDir, request.generation);
      io.out(checklist(manifest));
      return ExitCode.ok;
    }
    case 'pull': {
      if (!storedGenerations(stateDir).includes(request.generation)) {
        io.err(`lanha ssh-gate: generation ${request.generation.slice(0, 12)} is not stored on ${config.node.name}\n`);
        return ExitCode.failure;
      }
      // A store kept with --fake-super is read so: the node gets the real owners, modes and devices.
      const fake = isFakeSuper(stateDir, request.generation) ? ['--fake-super'] : [];
      const child = spawn('rsync', ['--server', '--sender', ...fake, ...request.options, '.', `${generationDir(stateDir, request.generation)}/`], { stdio: 'inherit' });
      return new Promise((resolve) => {
        child.on('error', (error) => { io.err(`lanha ssh-gate: cannot run rsync: ${errorMessage(error)}\n`); resolve(ExitCode.failure); });
        child.on('close', (code) => resolve(code ?? ExitCode.failure));
      });
    }
    case 'report': {
      const ip = clientAddress(process.env['SSH_CONNECTION']);
      if (ip === undefined) { io.err('lanha ssh-gate: no client address (SSH_CONNECTION)\n'); return ExitCode.failure; }
      const reply = await callDaemon(config.node.controlSocket, 'POST', '/v1/rootfs/report', { ip, generation: request.generation, exit: request.exit, bytes: request.bytes, ok: request.ok });
      if (reply.status === 409) { io.err(`lanha ssh-gate: ${config.node.name} is not the leader; report to the VIP\n`); return EX_TEMPFAIL; }
      if (reply.status !== 200) { io.err(`lanha ssh-gate: report refused: ${JSON.stringify(reply.body)}\n`); return ExitCode.failure; }
      io.out(`recorded: ${JSON.stringify(reply.body)}\n`);
      return ExitCode.ok;
    }
  }
}
