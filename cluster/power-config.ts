import { z } from 'zod';
import { duration } from '../lib/schema.js';
import { POWER_ACTIONS, argumentProblems } from './power.js';

// The `power:` config block (cluster/power.ts says what it runs): an argument list per action, per
// group, with its timeout and parallelism.

/** An argument list: the program (absolute path, or a name looked up in PATH), then its arguments. */
const argv = z.array(z.string().max(4096), { error: 'is not a list of arguments (["/usr/bin/ipmitool", "-H", "{{name}}-bmc", ...])' })
  .min(1, { message: 'is empty: give the program and its arguments' })
  .max(64, { message: 'has more than 64 arguments' })
  .superRefine((args, ctx) => {
    args.forEach((a, i) => { for (const message of argumentProblems(a)) ctx.addIssue({ code: 'custom', path: [i], message }); });
    if (args[0] === '' || args[0]!.includes('{{')) ctx.addIssue({ code: 'custom', path: [0], message: 'is the program to run: a fixed path or name, not a variable or empty' });
  });

/** Commands per action: one list for every action ({{action}} says which), or one per action. */
const commands = z.object({
  /** Used for every action without its own entry; {{action}} is on|off|cycle|status. */
  command: argv.optional(),
  on: argv.optional(),
  off: argv.optional(),
  cycle: argv.optional(),
  status: argv.optional(),
}).strict();

export const powerConfig = commands.extend({
  /** A command that runs longer is ended (its process group: SIGTERM, SIGKILL 2 s later) and reported as timed out. */
  timeout: duration.default(30_000),
  /** Commands at once, over every request the daemon runs (a PDU or BMC may take one session at a time: 1). */
  parallel: z.number().int().min(1).max(64).default(8),
  /** Other commands for the nodes of a group (e.g. the rack behind another PDU). */
  groups: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,63}$/, { message: 'is not a group name' }), commands).default({}),
}).strict().superRefine((c, ctx) => {
  const some = (x: z.output<typeof commands>): boolean => POWER_ACTIONS.some((a) => x[a] !== undefined) || x.command !== undefined;
  if (!some(c) && Object.keys(c.groups).length === 0) ctx.addIssue({ code: 'custom', path: ['command'], message: 'is not set, nor any of on, off, cycle, status or groups: there is nothing to run' });
  for (const [g, x] of Object.entries(c.groups)) if (!some(x)) ctx.addIssue({ code: 'custom', path: ['groups', g], message: 'names no command (command, on, off, cycle or status)' });
});

export type PowerConfig = z.output<typeof powerConfig>;
