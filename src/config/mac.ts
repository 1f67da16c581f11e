/** MAC addresses in ACLs: 00:1b:21:aa:bb:01 or 00-1B-21-AA-BB-01, normalized to lower-case colon form. */

export { normalizeMac } from "../protocol/mac.js";

/**
 * Whether `s` was probably meant as a MAC address (so a failed parse is a bad MAC,
 * not an unknown list name): it contains a colon (never valid in a list name), or is
 * made only of hex digits and - or . separators, or is 12 bare hex digits.
 */
export function looksLikeMac(s: string): boolean {
  return (
    s.includes(":") ||
    /^[0-9a-f]{1,4}([-.][0-9a-f]{1,4}){2,}$/i.test(s) ||
    /^[0-9a-f]{12}$/i.test(s)
  );
}

/** Why `s` is not a valid MAC, in words. Only meaningful when normalizeMac(s) is null. */
export function macProblem(s: string): string {
  const bare = s.trim();
  if (/^[0-9a-f]{12}$/i.test(bare)) return "the bytes must be separated by colons";
  if (bare.includes(":") && bare.includes("-")) return "it mixes ':' and '-' separators";
  const parts = bare.split(/[:.-]/);
  if (bare.includes(".")) return "dotted notation is not supported";
  if (parts.length !== 6) return `it has ${parts.length} parts instead of 6`;
  const badPart = parts.find((p) => !/^[0-9a-f]{2}$/i.test(p));
  if (badPart !== undefined) {
    return badPart === ""
      ? "it has an empty part"
      : `${JSON.stringify(badPart)} is not two hex digits`;
  }
  return "it is not six two-digit hex bytes";
}

/** Group bit set: multicast or broadcast, never a source address. */
export function isMulticastMac(mac: string): boolean {
  return (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1;
}
