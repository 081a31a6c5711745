import { readFileSync } from "node:fs";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { STEP_KINDS } from "../../src/domain/rules.js";
import {
  decodeStoredStep,
  encodeStoredStep,
  readStepRecord,
  STEP_STATES,
  type StoredStep,
  storedPatch,
} from "../../src/store/step-record.js";

/**
 * The stored form of a step record is written by the Lua scripts (lib/step-codec.lua) and read
 * by TypeScript (step-record.ts), and both read what the other writes, including the JSON of
 * key layout 4 and before. Checked here against a real Redis's Lua and cjson.
 */

const CODEC = ["base36", "step-codec"]
  .map((lib) =>
    readFileSync(new URL(`../../src/store/scripts/lib/${lib}.lua`, import.meta.url), "utf8"),
  )
  .join("\n");
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 3, 10);

let redis: Redis;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});

/** What the Lua codec stores for a record given as JSON. */
async function luaEncode(stored: StoredStep): Promise<string> {
  return String(
    await redis.eval(
      `${CODEC}\nreturn encodeStep(cjson.decode(ARGV[1]))`,
      0,
      JSON.stringify(stored),
    ),
  );
}

/** The record the Lua codec reads from a stored value, as JSON. */
async function luaDecode(raw: string): Promise<StoredStep> {
  return JSON.parse(
    String(await redis.eval(`${CODEC}\nreturn cjson.encode(decodeStep(ARGV[1]))`, 0, raw)),
  ) as StoredStep;
}

const scheduled: StoredStep = { s: "scheduled", d: NOW + 90 * DAY, c: "sms", k: "check-in" };
const sent: StoredStep = {
  s: "sent",
  d: NOW,
  t: NOW + 2_345,
  a: 1,
  c: "email",
  k: "thank-you",
  id: "<f00@example.com>",
};

describe("step record codec", () => {
  it("stores a pending step in a few characters and both sides read it back", async () => {
    const raw = await luaEncode(scheduled);
    expect(raw).toBe(`ssc${(NOW + 90 * DAY).toString(36)}`);
    expect(raw.length).toBe(11);
    expect(encodeStoredStep(scheduled)).toBe(raw);
    expect(decodeStoredStep(raw)).toEqual(scheduled);
    expect(await luaDecode(raw)).toEqual(scheduled);
    expect(readStepRecord(raw)).toMatchObject({
      state: "scheduled",
      dueAt: NOW + 90 * DAY,
      channel: "sms",
      kind: "check-in",
      attempts: 0,
    });
  });

  it("keeps the change time in base 36 and the other fields as JSON after a space", async () => {
    const raw = await luaEncode(sent);
    expect(raw.startsWith(`oet${NOW.toString(36)}.${(NOW + 2_345).toString(36)} {`)).toBe(true);
    expect(decodeStoredStep(raw)).toEqual(sent);
    expect(await luaDecode(encodeStoredStep(sent))).toEqual(sent);
  });

  it("reads the JSON of earlier versions, and keeps as JSON what the compact form cannot hold", async () => {
    const legacy = JSON.stringify(sent);
    expect(decodeStoredStep(legacy)).toEqual(sent);
    expect(await luaDecode(legacy)).toEqual(sent);
    // A due time that is not a whole number of ms: JSON, on both sides.
    const odd: StoredStep = { s: "scheduled", d: NOW + 0.5 };
    expect((await luaEncode(odd)).startsWith("{")).toBe(true);
    expect(encodeStoredStep(odd).startsWith("{")).toBe(true);
    expect(await luaDecode(await luaEncode(odd))).toEqual(odd);
  });

  it("keeps the discount code a send carried (`dc`) on both sides, read as codeHash", async () => {
    const patched = {
      ...sent,
      ...storedPatch({ state: "sent", codeHash: "Qx3-code-hash_0123456" }),
    };
    expect(patched.dc).toBe("Qx3-code-hash_0123456");
    const raw = await luaEncode(patched);
    expect(decodeStoredStep(raw)).toEqual(patched);
    expect(readStepRecord(raw).codeHash).toBe("Qx3-code-hash_0123456");
    expect(readStepRecord(encodeStoredStep(sent)).codeHash).toBeUndefined();
  });

  it("rejects a value in neither form with its length, not its content, in the message", async () => {
    // A record may hold a customer's reply, and the message is logged.
    const reply = "zz my number is +44 20 7946 0958";
    expect(() => decodeStoredStep(reply)).toThrow(
      new Error(`a step record in an unknown form (${reply.length} characters)`),
    );
    const lua = await luaDecode(reply).then(
      () => "",
      (error: Error) => error.message,
    );
    expect(lua).toContain(`a step record in an unknown form (${reply.length} characters)`);
    expect(lua).not.toContain("7946");
  });

  it("agrees with the Lua codec on any record the store writes", async () => {
    const text = fc.string({ maxLength: 30 });
    const ms = fc.integer({ min: 0, max: 4_102_444_800_000 });
    const record = fc.record(
      {
        s: fc.constantFrom(...STEP_STATES),
        d: ms,
        t: ms,
        a: fc.nat(20),
        c: fc.constantFrom("email", "sms", "voice"),
        k: fc.constantFrom(...STEP_KINDS),
        id: text,
        x: text,
        r: fc.nat(5),
        dl: text,
        de: fc.nat(99_999),
        rs: fc.nat(5),
        rq: fc.nat(5),
        dc: text,
      },
      { requiredKeys: ["s", "d"] },
    ) as fc.Arbitrary<StoredStep>;
    await fc.assert(
      fc.asyncProperty(record, async (stored) => {
        const fromLua = await luaEncode(stored);
        expect(decodeStoredStep(fromLua)).toEqual(stored);
        expect(await luaDecode(encodeStoredStep(stored))).toEqual(stored);
        expect(fromLua.length).toBeLessThanOrEqual(JSON.stringify(stored).length);
      }),
      { numRuns: 300 },
    );
  });
});
