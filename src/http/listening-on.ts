import type { AddressInfo } from "node:net";

/**
 * Where the HTTP server listens, for the start-up line: its bound address and port, and for a
 * wildcard address that it takes connections on every interface. The URL fastify hands back names
 * the first local address only (`http://127.0.0.1:8080` for `0.0.0.0`), which reads as if the
 * server were reachable from this host alone.
 */
export function listeningOn(address: AddressInfo | string | null): string {
  if (address === null) return "not listening";
  if (typeof address === "string") return address; // a pipe or socket path
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const everywhere =
    address.address === "0.0.0.0"
      ? " (every IPv4 interface)"
      : address.address === "::"
        ? " (every interface)"
        : "";
  return `${host}:${address.port}${everywhere}`;
}
