import { runSeedRange } from './raft-sim-test.js';

// The 10 000 CI seeds, in one file on purpose: it keeps one core busy for ~30 s instead of both,
// so timing-sensitive tests of other areas that tap runs alongside keep their CPU.
runSeedRange(1, 10_000);
