/** A million mutated frames at a running aoed, after a warm-up, with RSS checked flat (test/fuzz/daemon-fuzz.ts). */
import { wireFuzz } from "../fuzz/daemon-fuzz.js";

wireFuzz({ frames: 1_000_000, corpus: 100_000, warmUp: 60_000 });
