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

/** Parses "00:1b:21:aa:bb:01" or "00-1B-21-AA-BB-01"; null when malformed. */
export function parseMac(text: string): number | null {
  const m = /^([0-9a-f]{2})([:-])((?:[0-9a-f]{2}\2){4})([0-9a-f]{2})$/i.exec(text.trim());
  if (!m) return null;
  return Number.parseInt(text.trim().replace(/[:-]/g, ""), 16);
}
