/**
 * Sizes: a plain number of bytes, or a number with a unit.
 * K/M/G/T/P and KiB/MiB/GiB/TiB/PiB are powers of 1024 (as in dd, qemu-img, lvm);
 * KB/MB/GB/TB/PB are powers of 1000; B is bytes. Units are case-insensitive,
 * a space before the unit is allowed, fractions are fine if the result is whole bytes.
 */

/** The same grammar as parseSize, as a JSON-Schema pattern (no regex flags there). */
export const SIZE_PATTERN = "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KkMmGgTtPp]([Ii]?[Bb])?|[Bb])?\\s*$";

const SIZE_RE = /^\s*([0-9]+)(?:\.([0-9]+))?\s*(?:([kmgtp])(i?b)?|(b))?\s*$/i;
const POWERS = "kmgtp";

export type SizeResult = { ok: true; bytes: number } | { ok: false; message: string };

export function parseSize(input: string | number): SizeResult {
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input) || input < 0) {
      return { ok: false, message: `${input} is not a whole, non-negative number of bytes` };
    }
    return { ok: true, bytes: input };
  }
  const m = SIZE_RE.exec(input);
  if (!m) {
    return { ok: false, message: `${JSON.stringify(input)} is not a size` };
  }
  const [, whole = "0", frac = "", unit, suffix, bytesUnit] = m;
  let mult = 1n;
  if (unit !== undefined && bytesUnit === undefined) {
    const exp = BigInt(POWERS.indexOf(unit.toLowerCase()) + 1);
    const decimal = suffix !== undefined && suffix.toLowerCase() === "b";
    mult = (decimal ? 1000n : 1024n) ** exp;
  }
  const scale = 10n ** BigInt(frac.length);
  const scaled = (BigInt(whole) * scale + BigInt(frac || "0")) * mult;
  if (scaled % scale !== 0n) {
    return { ok: false, message: `${JSON.stringify(input.trim())} is not a whole number of bytes` };
  }
  const bytes = scaled / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    return { ok: false, message: `${JSON.stringify(input.trim())} is too large` };
  }
  return { ok: true, bytes: Number(bytes) };
}

const NAMES = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/** The largest binary unit `bytes` reaches (-1: below 1 KiB) and its size. */
function unitOf(bytes: number): { unit: number; div: number } {
  let unit = -1;
  while (unit + 1 < NAMES.length && bytes >= 1024 ** (unit + 2)) unit++;
  return { unit, div: 1024 ** (unit + 1) };
}

/**
 * A size for people, the one rounding rule of every size aoed and aoectl show:
 * the largest binary unit, one decimal place, dropped when it is 0.
 * 67108864 -> "64 MiB"; 1572864 -> "1.5 MiB"; 0 -> "0 B".
 */
export function formatBytes(bytes: number): string {
  const { unit, div } = unitOf(bytes);
  if (unit < 0) return `${bytes} B`;
  return `${(bytes / div).toFixed(1).replace(/\.0$/, "")} ${NAMES[unit]}`;
}

/**
 * A size in a config message, where the user may copy it: formatBytes, with
 * the exact count when the unit does not divide it.
 * 10737418240 -> "10 GiB"; 1000 -> "1000 bytes"; 1572864 -> "1.5 MiB (1572864 bytes)".
 */
export function formatSize(bytes: number): string {
  const { unit, div } = unitOf(bytes);
  if (unit < 0) return `${bytes} bytes`;
  if (bytes % div === 0) return formatBytes(bytes);
  return `${formatBytes(bytes)} (${bytes} bytes)`;
}
