/**
 * Pure checks for the contact fields of a user record: e-mail addresses (the practical
 * RFC 5321 subset that mail systems accept: dot-atom local part, dotted DNS name with a
 * letters-only top-level domain) and IP addresses (v4 dotted quad without leading zeros;
 * v6 in any RFC 4291 text form, with at most one "::" and an optional trailing v4 quad;
 * zone ids such as %eth0 are not user addresses and are rejected).
 */

const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const TOP_LEVEL = /^[A-Za-z]{2,63}$/;

export function isEmail(text: string): boolean {
  if (text.length > 254) return false;
  const at = text.lastIndexOf('@');
  if (at <= 0 || at > 64) return false;
  const local = text.slice(0, at);
  const labels = text.slice(at + 1).split('.');
  if (!LOCAL_PART.test(local) || labels.length < 2) return false;
  if (!TOP_LEVEL.test(labels[labels.length - 1])) return false;
  return labels.every((label) => DOMAIN_LABEL.test(label));
}

/** Trims and lower-cases the domain (the local part is case-sensitive by the letter of the RFC). */
export function normalizeEmail(text: string): string {
  const trimmed = text.trim();
  const at = trimmed.lastIndexOf('@');
  return at < 0 ? trimmed : trimmed.slice(0, at + 1) + trimmed.slice(at + 1).toLowerCase();
}

const OCTET = /^(?:0|[1-9]\d{0,2})$/;

export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => OCTET.test(p) && Number(p) <= 255);
}

const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

export function isIPv6(text: string): boolean {
  if (text.length < 2 || text.length > 45) return false;
  let groups = text;
  let extra = 0;
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) >= 0) {
    // A trailing dotted quad stands for the last two groups.
    if (!isIPv4(text.slice(lastColon + 1))) return false;
    groups = text.slice(0, lastColon + 1) + '0';
    extra = 1;
  }
  const halves = groups.split('::');
  if (halves.length > 2) return false;
  const split = (half: string) => (half === '' ? [] : half.split(':'));
  const head = split(halves[0]);
  const tail = halves.length === 2 ? split(halves[1]) : [];
  if (![...head, ...tail].every((g) => HEX_GROUP.test(g))) return false;
  const count = head.length + tail.length + extra;
  return halves.length === 2 ? count <= 7 : count === 8;
}

/** 4, 6, or 0 when the text is not an IP address (the contract of node:net isIP, zones aside). */
export function ipVersion(text: string): 0 | 4 | 6 {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  return 0;
}
