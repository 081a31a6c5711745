import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * Rules generations: a number per rules version, in the order workers first loaded them, shared
 * through Redis. Each step remembers the generation it was planned with, so re-planning only ever
 * moves steps forward to newer rules, whichever worker of a rolling deploy gets there first.
 */
export class RulesGenerations {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** The generation of a rules version (numbered on first sight), and the latest one. */
  async generationOf(version: string): Promise<{ generation: number; latest: number }> {
    const [generation, latest] = await this.redis.fuRulesGeneration(
      this.keys.rulesGenerations(),
      version,
    );
    return { generation, latest };
  }

  /** Whether a full re-planning walk under `generation` has completed (by any worker). */
  async walked(generation: number): Promise<boolean> {
    return (await this.redis.hexists(this.keys.rulesGenerations(), `w:${generation}`)) === 1;
  }

  /** Records that a full re-planning walk under `generation` has completed. */
  async markWalked(generation: number): Promise<void> {
    await this.redis.hset(this.keys.rulesGenerations(), `w:${generation}`, Date.now());
  }
}
