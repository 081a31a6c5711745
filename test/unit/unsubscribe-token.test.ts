import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { addressHash } from "../../src/domain/address-hash.js";
import { CHANNELS } from "../../src/domain/events.js";
import {
  MAX_UNSUBSCRIBE_TOKEN_LENGTH,
  signUnsubscribeToken,
  verifyUnsubscribeToken,
} from "../../src/domain/unsubscribe-token.js";
import { listUnsubscribeHeaders, unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";

const SECRET = "a-test-secret-of-some-length";
const OTHER_SECRET = "another-secret-entirely-here";

/** Replaces the character at `index` with a different base64url character. */
function flip(text: string, index: number): string {
  const char = text[index];
  return `${text.slice(0, index)}${char === "A" ? "B" : "A"}${text.slice(index + 1)}`;
}

describe("unsubscribe tokens", () => {
  it.each(CHANNELS)("round-trips the customer and the %s channel", (channel) => {
    const token = signUnsubscribeToken(SECRET, { customerId: "cus-5120", channel });
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(verifyUnsubscribeToken(SECRET, token)).toEqual({ customerId: "cus-5120", channel });
  });

  it("round-trips ids with non-ASCII characters and the longest id the contract allows", () => {
    for (const customerId of [
      "kundin-ñandú-😀",
      "x".repeat(200),
      "😀".repeat(100),
      "中".repeat(200),
      // 200 characters as the contract counts them (code points): 800 UTF-8 bytes.
      "😀".repeat(200),
    ]) {
      const token = signUnsubscribeToken(SECRET, { customerId, channel: "email" });
      expect(token.length).toBeLessThanOrEqual(MAX_UNSUBSCRIBE_TOKEN_LENGTH);
      expect(verifyUnsubscribeToken(SECRET, token)).toEqual({ customerId, channel: "email" });
    }
  });

  it("is deterministic, and differs by customer and by channel", () => {
    const email = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    expect(signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" })).toBe(email);
    expect(signUnsubscribeToken(SECRET, { customerId: "cus-2", channel: "email" })).not.toBe(email);
    expect(signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "sms" })).not.toBe(email);
  });

  it("refuses a token signed with another secret", () => {
    const foreign = signUnsubscribeToken(OTHER_SECRET, { customerId: "cus-1", channel: "email" });
    expect(verifyUnsubscribeToken(SECRET, foreign)).toBeUndefined();
  });

  it("refuses an altered payload, at every position", () => {
    const token = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    const dot = token.indexOf(".");
    for (let index = 0; index < dot; index++) {
      expect(
        verifyUnsubscribeToken(SECRET, flip(token, index)),
        `position ${index}`,
      ).toBeUndefined();
    }
  });

  it("refuses a payload naming another customer or channel under the original mac", () => {
    const token = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    const mac = token.slice(token.indexOf(".") + 1);
    const otherCustomer = Buffer.from([1, 1, ...Buffer.from("cus-2")]).toString("base64url");
    const otherChannel = Buffer.from([1, 2, ...Buffer.from("cus-1")]).toString("base64url");
    expect(verifyUnsubscribeToken(SECRET, `${otherCustomer}.${mac}`)).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, `${otherChannel}.${mac}`)).toBeUndefined();
  });

  it("refuses an altered mac, at every position", () => {
    const token = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "sms" });
    for (let index = token.indexOf(".") + 1; index < token.length; index++) {
      expect(
        verifyUnsubscribeToken(SECRET, flip(token, index)),
        `position ${index}`,
      ).toBeUndefined();
    }
  });

  it("refuses truncated tokens and tokens with extra characters", () => {
    const token = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    for (let length = 0; length < token.length; length++) {
      expect(verifyUnsubscribeToken(SECRET, token.slice(0, length))).toBeUndefined();
    }
    expect(verifyUnsubscribeToken(SECRET, `${token}A`)).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, `A${token}`)).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, `${token}.${token}`)).toBeUndefined();
  });

  it("refuses a non-canonical spelling of the same bytes", () => {
    const token = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    const [payload = "", mac = ""] = token.split(".");
    const bytes = Buffer.from(payload, "base64url");
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const twins = [...alphabet]
      .map((char) => `${payload.slice(0, -1)}${char}`)
      .filter((spelling) => spelling !== payload)
      .filter((spelling) => Buffer.from(spelling, "base64url").equals(bytes));
    expect(twins.length).toBeGreaterThan(0);
    for (const twin of twins) {
      expect(verifyUnsubscribeToken(SECRET, `${twin}.${mac}`)).toBeUndefined();
    }
    expect(verifyUnsubscribeToken(SECRET, `${payload}=.${mac}`)).toBeUndefined();
  });

  it.each([
    ["empty", ""],
    ["a dot", "."],
    ["garbage", "hello world"],
    ["not base64url", "!!!!.????"],
    ["a JWT-looking string", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjdXMtMSJ9."],
    ["overlong", `${"A".repeat(MAX_UNSUBSCRIBE_TOKEN_LENGTH)}.${"A".repeat(22)}`],
  ])("refuses %s", (_name, token) => {
    expect(verifyUnsubscribeToken(SECRET, token)).toBeUndefined();
  });

  it("refuses a correctly signed payload of an unknown version or channel", () => {
    const forge = (bytes: number[]) => {
      const payload = Buffer.from(bytes);
      const mac = createHmac("sha256", SECRET)
        .update("followups/unsubscribe\0")
        .update(payload)
        .digest()
        .subarray(0, 16);
      return `${payload.toString("base64url")}.${mac.toString("base64url")}`;
    };
    const id = [...Buffer.from("cus-1")];
    expect(verifyUnsubscribeToken(SECRET, forge([1, 1, ...id]))).toEqual({
      customerId: "cus-1",
      channel: "email",
    });
    expect(verifyUnsubscribeToken(SECRET, forge([3, 1, ...id]))).toBeUndefined();
    // Version 2 carries a 16-byte address hash before the id: five bytes are not enough.
    expect(verifyUnsubscribeToken(SECRET, forge([2, 1, ...id]))).toBeUndefined();
    const hash = Array.from({ length: 16 }, (_, i) => i);
    expect(verifyUnsubscribeToken(SECRET, forge([2, 2, ...hash, ...id]))).toEqual({
      customerId: "cus-1",
      channel: "sms",
      addressHash: "AAECAwQFBgcICQoLDA0ODw",
    });
    expect(verifyUnsubscribeToken(SECRET, forge([1, 9, ...id]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([1, 1]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([1, 1, 0xff, 0xfe]))).toBeUndefined();
  });

  it("carries the keyed hash of the address, so the opt-out covers the address too", () => {
    const hash = addressHash("an-address-hash-secret", "Ana@Example.com ");
    expect(hash).toBe(addressHash("an-address-hash-secret", "ana@example.com"));
    expect(hash).not.toBe(addressHash("another-address-secret", "ana@example.com"));
    expect(hash).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const target = { customerId: "x".repeat(200), channel: "email" as const, addressHash: hash };
    const token = signUnsubscribeToken(SECRET, target);
    expect(token.length).toBeLessThanOrEqual(MAX_UNSUBSCRIBE_TOKEN_LENGTH);
    expect(token).not.toContain("ana");
    expect(verifyUnsubscribeToken(SECRET, token)).toEqual(target);
    // A token without the hash (as sent before December 2026) still names its customer.
    const old = signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    expect(verifyUnsubscribeToken(SECRET, old)).toEqual({ customerId: "cus-1", channel: "email" });
    expect(() =>
      signUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email", addressHash: "short" }),
    ).toThrow(/16 bytes/);
  });

  it("hashes addresses with HMAC-SHA-256 under the secret, 128 bits in base64url", () => {
    const expected = createHmac("sha256", "an-address-hash-secret")
      .update("followups/address\0")
      .update("+442079460958")
      .digest()
      .subarray(0, 16)
      .toString("base64url");
    expect(addressHash("an-address-hash-secret", "+442079460958")).toBe(expected);
  });

  it("refuses short secrets and unusable customer ids when signing", () => {
    expect(() => signUnsubscribeToken("short", { customerId: "cus-1", channel: "email" })).toThrow(
      /at least 16 characters/,
    );
    expect(() => verifyUnsubscribeToken("", "x.y")).toThrow(/at least 16 characters/);
    expect(() => signUnsubscribeToken(SECRET, { customerId: "", channel: "email" })).toThrow(
      RangeError,
    );
    expect(() =>
      signUnsubscribeToken(SECRET, { customerId: "x".repeat(801), channel: "email" }),
    ).toThrow(RangeError);
  });
});

describe("unsubscribe links", () => {
  it("builds the page URL under PUBLIC_URL, with or without a trailing slash", () => {
    for (const base of ["https://followups.shop.example", "https://followups.shop.example/"]) {
      const url = unsubscribeUrl(base, SECRET, "cus-1", "email");
      const token = url.slice("https://followups.shop.example/unsubscribe/".length);
      expect(url.startsWith("https://followups.shop.example/unsubscribe/")).toBe(true);
      expect(verifyUnsubscribeToken(SECRET, token)).toEqual({
        customerId: "cus-1",
        channel: "email",
      });
    }
  });

  it("gives RFC 8058 headers, with a mailto fallback when configured", () => {
    const url = "https://followups.shop.example/unsubscribe/abc.def";
    expect(listUnsubscribeHeaders({ url })).toEqual({
      "List-Unsubscribe": `<${url}>`,
      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
    expect(listUnsubscribeHeaders({ url, mailto: "mailto:stop@shop.example" })).toEqual({
      "List-Unsubscribe": `<${url}>, <mailto:stop@shop.example?subject=unsubscribe%20abc.def>`,
      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
  });

  it("names the page's language in the link; the mailto subject carries the token alone", () => {
    const url = unsubscribeUrl(
      "https://followups.shop.example",
      SECRET,
      "cus-1",
      "email",
      undefined,
      "de",
    );
    expect(url).toMatch(
      /^https:\/\/followups\.shop\.example\/unsubscribe\/[A-Za-z0-9_.-]+\?lang=de$/,
    );
    const token = new URL(url).pathname.slice("/unsubscribe/".length);
    expect(listUnsubscribeHeaders({ url, mailto: "stop@shop.example" })["List-Unsubscribe"]).toBe(
      `<${url}>, <mailto:stop@shop.example?subject=unsubscribe%20${token}>`,
    );
  });
});
