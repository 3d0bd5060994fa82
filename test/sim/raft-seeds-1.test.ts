import { runSeedRange } from './raft-sim-test.js';

// Seeds 1..2500 of the 10 000 CI seeds (split in four files so tap runs them in parallel).
runSeedRange(1, 2500);
