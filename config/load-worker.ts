import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { loadConfig } from './index.js';

// The thread behind loadConfigOffLoop (load-off-loop.ts): reads and checks one config file and
// posts the result (the parsed config, or the error's words) back. Nothing else.

const { file } = workerData as { file: string };
try {
  parentPort!.postMessage({ ok: true, config: loadConfig(file) });
} catch (error) {
  parentPort!.postMessage({ ok: false, message: error instanceof ConfigError ? error.message : errorMessage(error) });
}
