import { expect, it } from "vitest";
import { listeningOn } from "../../src/http/listening-on.js";

it("says where the HTTP server listens, a wildcard address as every interface", () => {
  expect(listeningOn({ address: "0.0.0.0", family: "IPv4", port: 8080 })).toBe(
    "0.0.0.0:8080 (every IPv4 interface)",
  );
  expect(listeningOn({ address: "::", family: "IPv6", port: 8080 })).toBe(
    "[::]:8080 (every interface)",
  );
  expect(listeningOn({ address: "127.0.0.1", family: "IPv4", port: 43001 })).toBe(
    "127.0.0.1:43001",
  );
  expect(listeningOn({ address: "::1", family: "IPv6", port: 9 })).toBe("[::1]:9");
  expect(listeningOn("/run/followups.sock")).toBe("/run/followups.sock");
  expect(listeningOn(null)).toBe("not listening");
});
