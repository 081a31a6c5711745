import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { addressHash, customerHash } from "../../src/domain/address-hash.js";
import { idHash } from "../../src/store/keys.js";

/** The hashes as specified, computed afresh (no cache): HMAC-SHA-256, 128 bits, base64url. */
function expected(secret: string, context: string, value: string): string {
  return createHmac("sha256", secret)
    .update(`followups/${context}\0`)
    .update(value)
    .digest()
    .subarray(0, 16)
    .toString("base64url");
}

describe("keyed hashes, remembered for the events in flight", () => {
  it("answer as computed afresh, however often, per secret and per kind", () => {
    for (let round = 0; round < 3; round++) {
      for (const secret of ["secret-one-0123456789", "secret-two-0123456789"]) {
        // The same text as an address and as a customer id: two different hashes.
        expect(addressHash(secret, "Ana@Example.com ")).toBe(
          expected(secret, "address", "ana@example.com"),
        );
        expect(customerHash(secret, "Ana@Example.com ")).toBe(
          expected(secret, "customer", "Ana@Example.com "),
        );
      }
    }
    expect(addressHash("secret-one-0123456789", "x@example.com")).not.toBe(
      addressHash("secret-two-0123456789", "x@example.com"),
    );
  });

  it("stay correct past the cache's bounds (many ids, many secrets)", () => {
    for (let i = 0; i < 5_000; i++) {
      const secret = `secret-${i % 7}-0123456789`;
      expect(customerHash(secret, `c-${i}`)).toBe(expected(secret, "customer", `c-${i}`));
    }
    for (let i = 0; i < 5_000; i++) expect(idHash(`evt-${i}`)).toHaveLength(22);
    expect(idHash("evt-1")).toBe(idHash("evt-1"));
    expect(idHash("evt-1")).not.toBe(idHash("evt-2"));
  });
});
