import { register } from 'node:module';

// `node --import dist/test/support/module-trace.js X.js` with LANHA_MODULE_TRACE=FILE: every file
// module X loads is listed in FILE (module-trace-hooks.ts). Tests assert what a command loads.

const out = process.env['LANHA_MODULE_TRACE'];
if (out !== undefined && out !== '') register('./module-trace-hooks.js', import.meta.url, { data: { out } });
