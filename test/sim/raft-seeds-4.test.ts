import { runSeedRange } from './raft-sim-test.js';

// Seeds 7501..10000 of the 10 000 CI seeds (split in four files so tap runs them in parallel).
runSeedRange(7501, 2500);
