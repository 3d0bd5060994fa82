import { register } from 'node:module';
import { threadId } from 'node:worker_threads';

// `node --import dist/test/support/module-trace.js X.js` with LANHA_MODULE_TRACE=FILE: every file
// module X loads is listed in FILE (module-trace-hooks.ts). Tests assert what a command loads.
// "%p" in FILE is this process's PID (PID-THREAD on a worker thread that preloads it too): the
// daemon, its threads and the worker processes it forks (which inherit NODE_OPTIONS and the
// environment) each list theirs in a file of their own.

const out = process.env['LANHA_MODULE_TRACE'];
if (out !== undefined && out !== '') register('./module-trace-hooks.js', import.meta.url, { data: { out: out.replace('%p', threadId === 0 ? String(process.pid) : `${process.pid}-${threadId}`) } });
