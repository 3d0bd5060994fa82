import { runSeedRange } from './raft-sim-test.js';

// Seeds 2501..5000 of the 10 000 CI seeds (split in four files so tap runs them in parallel).
runSeedRange(2501, 2500);
