import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { loadConfig } from './index.js';

// The thread behind loadConfigOffLoop (load-off-loop.ts): reads and checks one config file and
// posts the result (the parsed config, or the error's words and whether the file was at fault) back.
// Nothing else.

const { file } = workerData as { file: string };
try {
  parentPort!.postMessage({ ok: true, config: loadConfig(file) });
} catch (error) {
  parentPort!.postMessage(error instanceof ConfigError ? { ok: false, message: error.message, invalid: true } : { ok: false, message: errorMessage(error), invalid: false });
}
