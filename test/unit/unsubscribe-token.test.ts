import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { addressHash, customerHash } from "../../src/domain/address-hash.js";
import { CHANNELS } from "../../src/domain/events.js";
import {
  MAX_UNSUBSCRIBE_TOKEN_LENGTH,
  signUnsubscribeToken,
  verifyUnsubscribeToken,
} from "../../src/domain/unsubscribe-token.js";
import { listUnsubscribeHeaders, unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";
import { legacyUnsubscribeToken, signedPayload } from "../support/legacy-unsubscribe-token.js";

const SECRET = "a-test-secret-of-some-length";
const OTHER_SECRET = "another-secret-entirely-here";

/** Replaces the character at `index` with a different base64url character. */
function flip(text: string, index: number): string {
  const char = text[index];
  return `${text.slice(0, index)}${char === "A" ? "B" : "A"}${text.slice(index + 1)}`;
}

const HASH_SECRET = "an-address-hash-secret";
/** The keyed hash a link names a customer by. */
const hashOf = (customerId: string) => customerHash(HASH_SECRET, customerId);
const CUS_1 = hashOf("cus-1");

/** A payload signed as the secret signs tokens, whatever its bytes. */
const forge = (bytes: number[]) => signedPayload(SECRET, Buffer.from(bytes));

describe("unsubscribe tokens", () => {
  it.each(CHANNELS)("round-trips the customer's keyed hash and the %s channel", (channel) => {
    const token = signUnsubscribeToken(SECRET, { customerHash: hashOf("cus-5120"), channel });
    expect(token).toMatch(/^[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{22}$/);
    expect(verifyUnsubscribeToken(SECRET, token)).toEqual({
      customerHash: hashOf("cus-5120"),
      channel,
    });
  });

  it("is as long for the longest id the contract allows as for a short one, and does not name the customer", () => {
    const addressHashed = addressHash(HASH_SECRET, "ana@example.com");
    for (const customerId of [
      "c",
      "kundin-ñandú-😀",
      "x".repeat(200),
      "中".repeat(200),
      // 200 characters as the contract counts them (code points): 800 UTF-8 bytes.
      "😀".repeat(200),
    ]) {
      const target = { customerHash: hashOf(customerId), channel: "email" as const };
      const token = signUnsubscribeToken(SECRET, target);
      expect(token).toHaveLength(47);
      expect(verifyUnsubscribeToken(SECRET, token)).toEqual(target);
      const withAddress = { ...target, addressHash: addressHashed };
      const longer = signUnsubscribeToken(SECRET, withAddress);
      expect(longer).toHaveLength(69);
      expect(verifyUnsubscribeToken(SECRET, longer)).toEqual(withAddress);
      const payload = Buffer.from(longer.split(".")[0] ?? "", "base64url");
      expect(payload.includes(Buffer.from(customerId))).toBe(false);
    }
  });

  it("is deterministic, and differs by customer and by channel", () => {
    const email = signUnsubscribeToken(SECRET, { customerHash: CUS_1, channel: "email" });
    expect(signUnsubscribeToken(SECRET, { customerHash: CUS_1, channel: "email" })).toBe(email);
    expect(
      signUnsubscribeToken(SECRET, { customerHash: hashOf("cus-2"), channel: "email" }),
    ).not.toBe(email);
    expect(signUnsubscribeToken(SECRET, { customerHash: CUS_1, channel: "sms" })).not.toBe(email);
  });

  it("refuses a token signed with another secret", () => {
    const foreign = signUnsubscribeToken(OTHER_SECRET, { customerHash: CUS_1, channel: "email" });
    expect(verifyUnsubscribeToken(SECRET, foreign)).toBeUndefined();
    const old = legacyUnsubscribeToken(OTHER_SECRET, { customerId: "cus-1", channel: "email" });
    expect(verifyUnsubscribeToken(SECRET, old)).toBeUndefined();
  });

  /** A token of each format: now (with and without the address) and before 7 December 2026. */
  const formats = [
    ["current", signUnsubscribeToken(SECRET, { customerHash: CUS_1, channel: "email" })],
    [
      "current, with the address",
      signUnsubscribeToken(SECRET, {
        customerHash: CUS_1,
        channel: "sms",
        addressHash: "AAECAwQFBgcICQoLDA0ODw",
      }),
    ],
    [
      "before 7 December 2026",
      legacyUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" }),
    ],
  ] as const;

  it.each(formats)("refuses an altered payload, at every position (%s)", (_format, token) => {
    const dot = token.indexOf(".");
    for (let index = 0; index < dot; index++) {
      expect(
        verifyUnsubscribeToken(SECRET, flip(token, index)),
        `position ${index}`,
      ).toBeUndefined();
    }
  });

  it("refuses a payload naming another customer or channel under the original mac", () => {
    const token = signUnsubscribeToken(SECRET, { customerHash: CUS_1, channel: "email" });
    const mac = token.slice(token.indexOf(".") + 1);
    const hash = (id: string) => [...Buffer.from(hashOf(id), "base64url")];
    const otherCustomer = Buffer.from([3, 1, ...hash("cus-2")]).toString("base64url");
    const otherChannel = Buffer.from([3, 2, ...hash("cus-1")]).toString("base64url");
    const asOldFormat = Buffer.from([1, 1, ...hash("cus-1")]).toString("base64url");
    expect(verifyUnsubscribeToken(SECRET, `${otherCustomer}.${mac}`)).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, `${otherChannel}.${mac}`)).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, `${asOldFormat}.${mac}`)).toBeUndefined();
    const old = legacyUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" });
    const oldMac = old.slice(old.indexOf(".") + 1);
    const renamed = Buffer.from([1, 1, ...Buffer.from("cus-2")]).toString("base64url");
    expect(verifyUnsubscribeToken(SECRET, `${renamed}.${oldMac}`)).toBeUndefined();
  });

  it.each(formats)("refuses an altered mac, at every position (%s)", (_format, token) => {
    for (let index = token.indexOf(".") + 1; index < token.length; index++) {
      expect(
        verifyUnsubscribeToken(SECRET, flip(token, index)),
        `position ${index}`,
      ).toBeUndefined();
    }
  });

  it.each(formats)(
    "refuses truncated tokens and tokens with extra characters (%s)",
    (_format, token) => {
      for (let length = 0; length < token.length; length++) {
        expect(verifyUnsubscribeToken(SECRET, token.slice(0, length))).toBeUndefined();
      }
      expect(verifyUnsubscribeToken(SECRET, `${token}A`)).toBeUndefined();
      expect(verifyUnsubscribeToken(SECRET, `A${token}`)).toBeUndefined();
      expect(verifyUnsubscribeToken(SECRET, `${token}.${token}`)).toBeUndefined();
    },
  );

  // A payload of 18 bytes (the current format without the address) fills its 24 characters: it
  // has no other spelling.
  it.each(formats.slice(1))(
    "refuses a non-canonical spelling of the same bytes (%s)",
    (_format, token) => {
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
    },
  );

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

  it("refuses a correctly signed payload of an unknown version or channel, or of the wrong length", () => {
    const id = [...Buffer.from("cus-1")];
    const hash = Array.from({ length: 16 }, (_, i) => i);
    const customer = [...Buffer.from(CUS_1, "base64url")];
    expect(verifyUnsubscribeToken(SECRET, forge([3, 1, ...customer]))).toEqual({
      customerHash: CUS_1,
      channel: "email",
    });
    expect(verifyUnsubscribeToken(SECRET, forge([4, 2, ...hash, ...customer]))).toEqual({
      customerHash: CUS_1,
      channel: "sms",
      addressHash: "AAECAwQFBgcICQoLDA0ODw",
    });
    // Versions 3 and 4 carry a 16-byte customer hash, nothing else after it.
    expect(verifyUnsubscribeToken(SECRET, forge([3, 1, ...id]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([3, 1, ...customer, 0]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([3, 1, ...customer.slice(1)]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([4, 1, ...customer]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([4, 1, ...hash, ...id]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([5, 1, ...customer]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([0, 1, ...id]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([3, 9, ...customer]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([3]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([]))).toBeUndefined();
  });

  it("signs nothing but a 16-byte keyed hash for the customer and the address", () => {
    for (const customerHash of ["", "short", "cus-1", `${CUS_1}A`, `${CUS_1.slice(0, -1)}=`]) {
      expect(() => signUnsubscribeToken(SECRET, { customerHash, channel: "email" })).toThrow(
        /a customer hash for an unsubscribe token must be 16 bytes/,
      );
    }
    expect(() =>
      signUnsubscribeToken(SECRET, { customerHash: CUS_1, channel: "email", addressHash: "short" }),
    ).toThrow(/an address hash for an unsubscribe token must be 16 bytes/);
  });

  it("carries the keyed hash of the address, so the opt-out covers the address too", () => {
    const hash = addressHash(HASH_SECRET, "Ana@Example.com ");
    expect(hash).toBe(addressHash(HASH_SECRET, "ana@example.com"));
    expect(hash).not.toBe(addressHash("another-address-secret", "ana@example.com"));
    expect(hash).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const target = {
      customerHash: hashOf("x".repeat(200)),
      channel: "email" as const,
      addressHash: hash,
    };
    const token = signUnsubscribeToken(SECRET, target);
    expect(token).not.toContain("ana");
    expect(verifyUnsubscribeToken(SECRET, token)).toEqual(target);
  });

  it("hashes addresses and customer ids with HMAC-SHA-256 under the secret, 128 bits in base64url", () => {
    const keyed = (context: string, value: string) =>
      createHmac("sha256", HASH_SECRET)
        .update(context)
        .update(value)
        .digest()
        .subarray(0, 16)
        .toString("base64url");
    expect(addressHash(HASH_SECRET, "+442079460958")).toBe(
      keyed("followups/address\0", "+442079460958"),
    );
    expect(hashOf("😀".repeat(200))).toBe(keyed("followups/customer\0", "😀".repeat(200)));
  });

  it("refuses short secrets when signing or verifying", () => {
    expect(() => signUnsubscribeToken("short", { customerHash: CUS_1, channel: "email" })).toThrow(
      /at least 16 characters/,
    );
    expect(() => verifyUnsubscribeToken("", "x.y")).toThrow(/at least 16 characters/);
  });
});

describe("unsubscribe tokens signed before 7 December 2026 (the customer id in the token)", () => {
  it("verifies tokens exactly as that version signed them", () => {
    // Signed by signUnsubscribeToken at d419ef7 (6 December 2026's code), with SECRET.
    expect(verifyUnsubscribeToken(SECRET, "AQFjdXMtMQ.gQNq867Xmhmrax43jN7Qtg")).toEqual({
      customerId: "cus-1",
      channel: "email",
    });
    const withAddress = "AgIAAQIDBAUGBwgJCgsMDQ4Pa3VuZGluLcOxYW5kw7ot8J-YgA.XcYq2y-Vf-06BWP37NHM_w";
    const target = {
      customerId: "kundin-ñandú-😀",
      channel: "sms" as const,
      addressHash: "AAECAwQFBgcICQoLDA0ODw",
    };
    expect(verifyUnsubscribeToken(SECRET, withAddress)).toEqual(target);
    // The tests' own signer of that format makes the same tokens.
    expect(legacyUnsubscribeToken(SECRET, { customerId: "cus-1", channel: "email" })).toBe(
      "AQFjdXMtMQ.gQNq867Xmhmrax43jN7Qtg",
    );
    expect(legacyUnsubscribeToken(SECRET, target)).toBe(withAddress);
  });

  it.each(CHANNELS)(
    "round-trips ids up to 800 bytes on the %s channel, with or without the address",
    (channel) => {
      for (const customerId of [
        "cus-5120",
        "kundin-ñandú-😀",
        "x".repeat(200),
        "中".repeat(200),
        "😀".repeat(200),
      ]) {
        const token = legacyUnsubscribeToken(SECRET, { customerId, channel });
        expect(token.length).toBeLessThanOrEqual(MAX_UNSUBSCRIBE_TOKEN_LENGTH);
        expect(verifyUnsubscribeToken(SECRET, token)).toEqual({ customerId, channel });
        const addressHash = "AAECAwQFBgcICQoLDA0ODw";
        const withAddress = legacyUnsubscribeToken(SECRET, { customerId, channel, addressHash });
        expect(withAddress.length).toBeLessThanOrEqual(MAX_UNSUBSCRIBE_TOKEN_LENGTH);
        expect(verifyUnsubscribeToken(SECRET, withAddress)).toEqual({
          customerId,
          channel,
          addressHash,
        });
      }
    },
  );

  it("refuses what that version refused", () => {
    const id = [...Buffer.from("cus-1")];
    // Version 2 carries a 16-byte address hash before the id: five bytes are not enough.
    expect(verifyUnsubscribeToken(SECRET, forge([2, 1, ...id]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([1, 9, ...id]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([1, 1]))).toBeUndefined();
    expect(verifyUnsubscribeToken(SECRET, forge([1, 1, 0xff, 0xfe]))).toBeUndefined();
    expect(
      verifyUnsubscribeToken(SECRET, forge([1, 1, ...Buffer.from("x".repeat(801))])),
    ).toBeUndefined();
  });
});

describe("unsubscribe links", () => {
  it("builds the page URL under PUBLIC_URL, with or without a trailing slash", () => {
    for (const base of ["https://followups.shop.example", "https://followups.shop.example/"]) {
      const url = unsubscribeUrl(base, SECRET, CUS_1, "email");
      const token = url.slice("https://followups.shop.example/unsubscribe/".length);
      expect(url.startsWith("https://followups.shop.example/unsubscribe/")).toBe(true);
      expect(verifyUnsubscribeToken(SECRET, token)).toEqual({
        customerHash: CUS_1,
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

  it("writes the mailto in ASCII as RFC 6068 does: the domain in punycode, other characters of the mailbox name percent-encoded in UTF-8", () => {
    const url = "https://followups.shop.example/unsubscribe/abc.def";
    const header = (mailto: string) =>
      listUnsubscribeHeaders({ url, mailto })["List-Unsubscribe"] ?? "";
    expect(header("abmelden@bücher.example")).toBe(
      `<${url}>, <mailto:abmelden@xn--bcher-kva.example?subject=unsubscribe%20abc.def>`,
    );
    expect(header("mailto:äb%me?n&d=@bücher.example")).toBe(
      `<${url}>, <mailto:%C3%A4b%25me%3Fn%26d%3D@xn--bcher-kva.example?subject=unsubscribe%20abc.def>`,
    );
    const mailto = /<mailto:([^>]+)>/.exec(header("äb%me?n&d=@bücher.example"))?.[1];
    expect(decodeURIComponent(new URL(`mailto:${mailto}`).pathname)).toBe(
      "äb%me?n&d=@xn--bcher-kva.example",
    );
    expect(header("o'brien+news@shop.example")).toBe(
      `<${url}>, <mailto:o'brien+news@shop.example?subject=unsubscribe%20abc.def>`,
    );
  });

  it("names the page's language in the link; the mailto subject carries the token alone", () => {
    const url = unsubscribeUrl(
      "https://followups.shop.example",
      SECRET,
      CUS_1,
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
