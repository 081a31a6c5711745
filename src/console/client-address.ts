import { isIP } from "node:net";

/**
 * The group of addresses a rate limit counts a client under: an IPv4 address as itself (also
 * when it comes IPv4-mapped, `::ffff:192.0.2.1`, as a dual-stack server sees it), an IPv6
 * address by its /64, the smallest block one subscriber is usually given (counting each address
 * apart would let one client take a fresh one for every try).
 */
export function rateLimitGroup(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (isIP(address) !== 6) return address;
  const [head = "", tail] = address.split("::");
  const front = head === "" ? [] : head.split(":");
  const back = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups =
    tail === undefined
      ? front
      : [...front, ...Array(8 - front.length - back.length).fill("0"), ...back];
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().padStart(4, "0"))
    .join(":")}::/64`;
}
