/**
 * MAC addresses as 48-bit integers: exact in a double, compared and stored in
 * sets without allocating, read straight off a frame with readUIntBE.
 */

export function readMac(buf: Buffer, off: number): number {
  return buf.readUIntBE(off, 6);
}

export function writeMac(buf: Buffer, off: number, mac: number): void {
  buf.writeUIntBE(mac, off, 6);
}

export function macToString(mac: number): string {
  return mac
    .toString(16)
    .padStart(12, "0")
    .replace(/(..)(?!$)/g, "$1:");
}

const MAC_RE = /^([0-9a-f]{2})([:-])((?:[0-9a-f]{2}\2){4})([0-9a-f]{2})$/i;

/** "00:1b:21:aa:bb:01" or "00-1B-21-AA-BB-01" in lower-case colon form; null when malformed. */
export function normalizeMac(text: string): string | null {
  const t = text.trim();
  return MAC_RE.test(t) ? t.replace(/-/g, ":").toLowerCase() : null;
}

/** The MAC as a 48-bit integer; null when malformed. */
export function parseMac(text: string): number | null {
  const mac = normalizeMac(text);
  return mac === null ? null : Number.parseInt(mac.replace(/:/g, ""), 16);
}
