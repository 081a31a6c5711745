import { describe, expect, it } from "vitest";
import { MAX_SHARDS, parseServedShards } from "../../src/domain/shard-spec.js";
import { customerShard, StoreKeys, shardScope } from "../../src/store/keys.js";
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

  it("names a shard's keys under its own hash tag and the global ones under the prefix's", () => {
    const keys = new StoreKeys(shardScope("shop", 3, 4));
    expect(keys.eventRecord("evt-1")).toMatch(/^\{shop:3\}:fu:e:/);
    expect(keys.scheduleIndex()).toBe("{shop:3}:fu:t");
    expect(keys.order("ord-1")).toMatch(/^\{shop\}:fu:o:/);
    expect(keys.ofShard(1).ledgerHour(7)).toBe("{shop:1}:fu:agg:7");
    // Readers of the ledger add up the global ledger and all four shards'.
    expect(keys.ledgers().map((hourKey) => hourKey(7))).toEqual([
      "{shop}:fu:agg:7",
      "{shop:0}:fu:agg:7",
      "{shop:1}:fu:agg:7",
      "{shop:2}:fu:agg:7",
      "{shop:3}:fu:agg:7",
    ]);
    // A plain prefix is shard 0 of one, as before shards.
    expect(new StoreKeys("shop").eventRecord("evt-1")).toBe(
      new StoreKeys(shardScope("shop", 0, 4)).eventRecord("evt-1"),
    );
    expect(() => shardScope("shop", 4, 4)).toThrow("shard 4 is not one of 0 to 3");
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
