import calculateSlot from "cluster-key-slot";
import { describe, expect, it } from "vitest";
import { MAX_SHARDS, parseServedShards } from "../../src/domain/shard-spec.js";
import {
  customerShard,
  globalTag,
  queueTag,
  StoreKeys,
  shardScope,
  shardTag,
} from "../../src/store/keys.js";
import { Shards } from "../../src/store/shards.js";

describe("shards (FOLLOW_UP_SHARDS)", () => {
  it("puts a customer in one shard, the same every time, spread evenly over the count", () => {
    expect(customerShard("cus-1", 1)).toBe(0);
    expect(customerShard("cus-1", 16)).toBe(customerShard("cus-1", 16));
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) {
      const shard = customerShard(`cus-${i}`, 16);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    // 1,000 each on average; a hash this good stays within 15 % of it.
    expect(Math.min(...counts)).toBeGreaterThan(850);
    expect(Math.max(...counts)).toBeLessThan(1_150);
  });

  it("names a shard's keys under its own hash tag and the global ones under the global tag", () => {
    const keys = new StoreKeys(shardScope("shop", 3, 4));
    const tag = shardTag("shop", 3, 4);
    expect(keys.eventRecord("evt-1").startsWith(`${tag}:fu:e:`)).toBe(true);
    expect(keys.scheduleIndex()).toBe(`${tag}:fu:t`);
    expect(keys.order("ord-1")).toMatch(/^\{shop\.global\}:fu:o:/);
    expect(keys.ofShard(0).ledgerHour(7)).toBe("{shop:0}:fu:agg:7");
    // Readers of the ledger add up the global ledger and all four shards'.
    expect(keys.ledgers().map((hourKey) => hourKey(7))).toEqual([
      "{shop.global}:fu:agg:7",
      ...[0, 1, 2, 3].map((shard) => `${shardTag("shop", shard, 4)}:fu:agg:7`),
    ]);
    // A plain prefix is shard 0 of one, as before shards.
    expect(new StoreKeys("shop").eventRecord("evt-1")).toBe(
      new StoreKeys(shardScope("shop", 0, 4)).eventRecord("evt-1"),
    );
    expect(() => shardScope("shop", 4, 4)).toThrow("shard 4 is not one of 0 to 3");
  });

  it("spreads the shards' tags evenly over a cluster's slots, so every master gets its share", () => {
    for (const [prefix, shards] of [
      ["followups", 16],
      ["shop", 64],
      ["followups", 5],
    ] as const) {
      const tags = Array.from({ length: shards }, (_, n) => shardTag(prefix, n, shards));
      expect(new Set(tags).size).toBe(shards);
      for (const tag of tags) expect(tag).toMatch(new RegExp(`^\\{${prefix}:\\d+(\\.\\d+)?\\}$`));
      // Masters own contiguous, equal slot ranges (as redis-cli --cluster create deals them).
      for (const masters of [2, 3, 4, 5, 8].filter((m) => m <= shards)) {
        const perMaster = new Array<number>(masters).fill(0);
        for (const tag of tags) {
          const master = Math.floor((calculateSlot(tag) * masters) / 16_384);
          perMaster[master] = (perMaster[master] ?? 0) + 1;
        }
        expect(Math.min(...perMaster)).toBeGreaterThanOrEqual(Math.floor(shards / masters) - 1);
        expect(Math.max(...perMaster)).toBeLessThanOrEqual(Math.ceil(shards / masters) + 1);
      }
    }
    // Shard 0 keeps the name it had before shards existed.
    expect(shardTag("followups", 0, 16)).toBe("{followups:0}");
  });

  it("puts the global keys on another master than the input queue, with evenly split slots", () => {
    // Prefixes whose first candidate tag falls near the input queue's slot take a numbered one.
    const prefixes = ["followups", "shop", "shop-a", "x", "a", "B_2", "followups-test"];
    expect(prefixes.some((prefix) => globalTag(prefix) !== `{${prefix}.global}`)).toBe(true);
    for (const prefix of prefixes) {
      const tag = globalTag(prefix);
      expect(tag).toMatch(new RegExp(`^\\{${prefix}\\.global(\\.\\d+)?\\}$`));
      expect(globalTag(prefix)).toBe(tag);
      // redis-cli --cluster create makes three masters or more, each a contiguous slot range.
      for (const masters of [3, 4, 5, 6, 8, 16]) {
        const masterOf = (hashTag: string) =>
          Math.floor((calculateSlot(hashTag) * masters) / 16_384);
        expect(masterOf(tag), `${prefix} on ${masters} masters`).not.toBe(
          masterOf(queueTag(prefix)),
        );
      }
    }
    expect(globalTag("followups")).toBe("{followups.global}");
    expect(queueTag("followups")).toBe("{followups}");
  });

  it("makes what a shard needs once, on first use", () => {
    let made = 0;
    const shards = new Shards(4, (shard) => ({ shard, serial: made++ }));
    expect(shards.of(2)).toBe(shards.of(2));
    expect(shards.made().map((value) => value.shard)).toEqual([2]);
    expect(shards.ofCustomer("cus-1").shard).toBe(customerShard("cus-1", 4));
    expect(() => shards.of(4)).toThrow("shard 4 is not one of 0 to 3");
    expect(() => new Shards(0, () => 0)).toThrow(`1 to ${MAX_SHARDS}`);
  });

  it("reads FOLLOW_UP_SHARDS_SERVED as numbers and ranges", () => {
    expect(parseServedShards(undefined, 3)).toEqual({ shards: [0, 1, 2] });
    expect(parseServedShards(" ", 2)).toEqual({ shards: [0, 1] });
    expect(parseServedShards("0-2, 5,4-4", 16)).toEqual({ shards: [0, 1, 2, 4, 5] });
    expect(parseServedShards("3-1", 16)).toEqual({ problem: "the range 3-1 runs backwards" });
    expect(parseServedShards("8", 8)).toEqual({
      problem: "shard 8 does not exist: FOLLOW_UP_SHARDS is 8, so shards are 0 to 7",
    });
    expect(parseServedShards("a-b", 8)).toEqual({
      problem: 'expected shard numbers and ranges such as 0-7 or 0,2,4-6, got "a-b"',
    });
  });
});
