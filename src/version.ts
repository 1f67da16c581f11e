import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package root: the nearest ancestor holding our package.json (same from src/ and dist/src/). */
const PACKAGE_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("aoed: package.json not found above the installed files");
    dir = up;
  }
  return dir;
})();

const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as {
  version: string;
};

/** Release version, e.g. "0.1.0"; reported as the IDENTIFY firmware string. */
export const VERSION = pkg.version;

/** The 16-bit AoE firmware version field: 0xMMmp (major byte, minor and patch nibbles), 0.1.0 -> 0x0010. */
export const FIRMWARE_VERSION = (() => {
  const [major = 0, minor = 0, patch = 0] = VERSION.split(".").map(Number);
  return ((major & 0xff) << 8) | ((minor & 0x0f) << 4) | (patch & 0x0f);
})();
