import { ConfigError } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { loadConfig } from './index.js';

// The child process behind loadConfigOffLoop (load-off-loop.ts): reads and checks one config file
// (its first argument) and sends the result (the parsed config, or the error's words and whether
// the file was at fault) back, then exits. Nothing else.

const file = process.argv[2] ?? '';
let result;
try {
  result = { ok: true, config: loadConfig(file) };
} catch (error) {
  result = error instanceof ConfigError ? { ok: false, message: error.message, invalid: true } : { ok: false, message: errorMessage(error), invalid: false };
}
process.send!(result, () => process.disconnect());
