import { CommandError, type CommandIo, EXIT } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, renderCancelText } from "./operator-text.js";

export interface CancelOptions {
  readonly config: string;
  readonly step?: string;
  readonly order?: string;
  readonly customer?: string;
  readonly reason?: string;
  readonly by?: string;
  readonly json?: boolean;
}

/**
 * `followups cancel`: cancels the pending follow-ups of one step, an order or a customer, with the
 * reason and who did it (audit trail, ledger reason `operator`). Exit 1 when nothing was pending.
 */
export async function runCancel(options: CancelOptions, io: CommandIo): Promise<number> {
  const targets = [
    options.step !== undefined && { flag: "--step", target: { step: options.step } },
    options.order !== undefined && { flag: "--order", target: { order: options.order } },
    options.customer !== undefined && {
      flag: "--customer",
      target: { customer: options.customer },
    },
  ].filter((given) => given !== false);
  const accepted = "exactly one of --step REF, --order ID or --customer ID";
  if (targets.length > 1) {
    const flags = targets.map((given) => given.flag);
    const given = `${flags.slice(0, -1).join(", ")} and ${flags.at(-1)}`;
    throw new CommandError(
      `cancel takes ${accepted}; got ${given}: cancel each in a command of its own`,
      EXIT.usage,
    );
  }
  const target = targets[0]?.target;
  if (!target) throw new CommandError(`name what to cancel: ${accepted}`, EXIT.usage);
  return withOperatorTools(
    options.config,
    async (tools) => {
      const result = await tools.cancel(target, {
        by: operatorName(options.by),
        ...(options.reason && { reason: options.reason }),
      });
      io.out(options.json ? jsonOutput(result) : renderCancelText(result));
      return EXIT.ok;
    },
    { io },
  );
}
