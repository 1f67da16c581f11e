/** A short wire fuzz with exact accounting; the soak suite runs a million frames (test/soak/wire-fuzz.test.ts). */
import { wireFuzz } from "./daemon-fuzz.js";

wireFuzz({ frames: 40_000, corpus: 20_000, warmUp: 0 });
