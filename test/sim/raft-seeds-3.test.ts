import { runSeedRange } from './raft-sim-test.js';

// Seeds 5001..7500 of the 10 000 CI seeds (split in four files so tap runs them in parallel).
runSeedRange(5001, 2500);
