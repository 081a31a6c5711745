import type { RecentSteps } from "../domain/rules.js";
import type { CooldownVersions, RecentStepsRead } from "../store/customer-history.js";

/** How often a purchase is planned against its customer's recent steps before giving up. */
export const COOLDOWN_PLAN_ATTEMPTS = 5;

/**
 * The customer's other purchases kept remembering steps under the cooldowns of a purchase's plan
 * while it was planned (a burst of their purchases taken in at once): the attempt fails, and the
 * caller's retry policy plans the purchase again later.
 */
export class CooldownContention extends Error {
  override readonly name = "CooldownContention";
  constructor(attempts: number) {
    super(
      `the customer's steps under a cooldown changed while their purchase was planned, ${attempts} times`,
    );
  }
}

/**
 * Plans a purchase against its customer's recent steps and remembers its steps under a cooldown,
 * optimistically: when another purchase of theirs remembered a step under one of the same
 * cooldowns between the read and the write (remember-steps.lua refuses the write), the purchase is
 * planned again from a fresh read, against that step. So of two purchases taken in at once, the
 * first to remember keeps its step and the other's is held by the cooldown. At most
 * COOLDOWN_PLAN_ATTEMPTS plans; then CooldownContention. The plan itself stays pure (`planWith`).
 * Returns the plan and how its remembering ended (`superseded`: a newer rules generation's steps
 * of the purchase were remembered first, CustomerHistoryStore.rememberSteps).
 */
export async function planHeldToCooldowns<T>(
  read: () => Promise<RecentStepsRead>,
  planWith: (recent: RecentSteps) => T | Promise<T>,
  remember: (
    planned: T,
    readAs: CooldownVersions,
  ) => Promise<"remembered" | "conflict" | "erased" | "superseded">,
): Promise<{ planned: T; remembered: "remembered" | "erased" | "superseded" }> {
  for (let attempt = 1; ; attempt++) {
    const recent = await read();
    const planned = await planWith(recent);
    const remembered = await remember(planned, recent.versions);
    if (remembered !== "conflict") return { planned, remembered };
    if (attempt >= COOLDOWN_PLAN_ATTEMPTS) throw new CooldownContention(attempt);
  }
}
