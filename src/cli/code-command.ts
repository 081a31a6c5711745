import { DiscountCodes } from "../store/discount-codes.js";
import { commandRedis, refuseIfMoved } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { jsonOutput, terminalText } from "./operator-text.js";

/**
 * `followups code <CODE>`: what a till would learn of a discount code (valid, expired, redeemed
 * and by which order, or unknown), typed in any case, with or without hyphens. Exit 1 when the
 * code is unknown.
 */
export async function runCode(
  typed: string,
  options: { readonly json?: boolean },
  io: CommandIo,
): Promise<number> {
  if (typed.trim() === "")
    throw new CommandError(
      "CODE: expected a discount code, such as K7QM-2XRD, got nothing",
      EXIT.usage,
    );
  const { redis, prefix } = await commandRedis();
  await refuseIfMoved(redis, prefix);
  try {
    const found = await new DiscountCodes(redis, prefix).lookup(typed.trim(), Date.now());
    if (!found) {
      if (options.json) io.out(jsonOutput({ code: typed.trim(), status: "unknown" }));
      else
        io.err(
          terminalText(
            `unknown code: ${typed.trim()} was never issued, or is gone after it expired\n`,
          ),
        );
      return EXIT.invalid;
    }
    if (options.json) {
      io.out(jsonOutput(found));
    } else {
      const state =
        found.status === "redeemed"
          ? found.redeemedBy
            ? `redeemed by order ${found.redeemedBy}`
            : "redeemed (its customer's data was since erased)"
          : found.status === "revoked"
            ? "revoked: the customer it was issued to had their data erased"
            : found.status === "expired"
              ? `expired (valid until ${found.validUntil})`
              : `valid until ${found.validUntil}`;
      io.out(terminalText(`${found.code}: ${found.percent}% off, ${state}\n`));
    }
    return EXIT.ok;
  } finally {
    redis.disconnect();
  }
}
